/**
 * OpenAI messages and tools -> node-llama-cpp chat history and functions. Pure (type imports only).
 */
import type {
  ChatHistoryItem,
  ChatModelFunctionCall,
  ChatModelFunctions,
  ChatModelResponse,
} from "node-llama-cpp";
import type { ChatMessage, ToolDefinition } from "./openai.ts";
import { toGrammarSchema } from "./schema.ts";

function parseArguments(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * The chat history for a request, ending with the model's turn to write: an empty model response,
 * or the last assistant message when the request ends with one (its text is continued, and after
 * tool results the model goes on from them). Tool results are attached to the call they answer;
 * a result for an unknown call becomes a user message saying what it is.
 */
export function toChatHistory(messages: readonly ChatMessage[]): ChatHistoryItem[] {
  const items: ChatHistoryItem[] = [];
  const calls = new Map<string, ChatModelFunctionCall>();
  for (const m of messages) {
    switch (m.role) {
      case "system":
        items.push({ type: "system", text: m.text });
        break;
      case "user":
        items.push({ type: "user", text: m.text });
        break;
      case "assistant": {
        const response: ChatModelResponse["response"] = [];
        if (m.text) response.push(m.text);
        for (const c of m.toolCalls) {
          const call: ChatModelFunctionCall = {
            type: "functionCall",
            name: c.name,
            params: parseArguments(c.arguments),
            result: "(no result)",
          };
          calls.set(c.id, call);
          response.push(call);
        }
        items.push({ type: "model", response });
        break;
      }
      case "tool": {
        const call = calls.get(m.toolCallId);
        if (call) call.result = m.text;
        else items.push({ type: "user", text: `Result of tool call ${m.toolCallId}:\n${m.text}` });
        break;
      }
    }
  }
  if (items.at(-1)?.type !== "model") items.push({ type: "model", response: [] });
  return items;
}

/** node-llama-cpp functions for the request's tools (empty when there are none). */
export function toFunctions(tools: readonly ToolDefinition[]): ChatModelFunctions {
  const out: Record<string, { description?: string; params?: ReturnType<typeof toGrammarSchema> }> = {};
  for (const t of tools) {
    const params = toGrammarSchema(t.parameters);
    out[t.name] = {
      ...(t.description ? { description: t.description } : {}),
      ...(params ? { params } : {}),
    };
  }
  return out;
}
