import { readFile } from "node:fs/promises";
import { pidsOfUid } from "../src/lib/procfs.ts";

/** Why a root-only integration test cannot run here, or undefined when it can. */
export function needsRoot(): string | undefined {
  return process.getuid?.() === 0
    ? undefined
    : "needs root (CI runs as root): it creates tenant uids and directories";
}

/** The main OpenClaw gateway processes (process title "openclaw-gateway") of a uid. */
export async function gatewayProcesses(uid: number): Promise<number[]> {
  const out: number[] = [];
  for (const pid of await pidsOfUid(uid)) {
    const cmd = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (cmd.startsWith("openclaw-gateway")) out.push(pid);
  }
  return out;
}

export interface ChatResult {
  status: number;
  text: string;
  content: string | undefined;
}

/** One chat through a gateway's OpenAI-compatible endpoint. */
export async function chat(
  url: string,
  token: string,
  message: string,
  timeoutMs = 120_000,
): Promise<ChatResult> {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "openclaw", messages: [{ role: "user", content: message }] }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  let content: string | undefined;
  try {
    content = (JSON.parse(text) as { choices?: { message?: { content?: string } }[] }).choices?.[0]?.message
      ?.content;
  } catch {
    content = undefined;
  }
  return { status: res.status, text, content };
}
