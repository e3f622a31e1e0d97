import assert from "node:assert/strict";
import { test } from "node:test";
import { type GbnfJsonSchema, getLlama, LlamaLogLevel } from "node-llama-cpp";
import { ANY_JSON, toGrammarSchema } from "./schema.ts";
import { OPENCLAW_TOOLS } from "./testing.ts";

test("JSON Schema keywords the grammar cannot express are dropped, the shape is kept", () => {
  assert.equal(toGrammarSchema(undefined), undefined);
  assert.deepEqual(
    toGrammarSchema({
      type: "object",
      required: ["path", "ghost"],
      properties: {
        path: { type: "string", description: "File path", pattern: "^/" },
        limit: { type: "integer", minimum: 1 },
        mode: { enum: ["a", "b", { x: 1 }] },
        args: { type: "object", patternProperties: { "^.*$": {} } },
        when: { type: "string", format: "date-time" },
        tags: { type: "array", items: { type: "string" }, maxItems: 3 },
        either: { anyOf: [{ type: "string" }, { type: "number" }] },
        maybe: { type: ["string", "null"] },
      },
    }),
    {
      type: "object",
      properties: {
        path: { type: "string", description: "File path" },
        limit: { type: "integer" },
        mode: { enum: ["a", "b"] },
        args: { type: "object", properties: {}, additionalProperties: true },
        when: { type: "string", format: "date-time" },
        tags: { type: "array", items: { type: "string" }, maxItems: 3 },
        either: { oneOf: [{ type: "string" }, { type: "number" }] },
        maybe: { type: ["string", "null"] },
      },
      required: ["path"],
      additionalProperties: false,
    },
  );
  assert.deepEqual(
    toGrammarSchema({
      $defs: { P: { type: "string" } },
      type: "object",
      properties: { p: { $ref: "#/$defs/P" } },
    }),
    { type: "object", properties: { p: { type: "string" } }, additionalProperties: false },
  );
  assert.deepEqual(toGrammarSchema({ type: "object", properties: { x: { $ref: "#/nowhere" } } }), {
    type: "object",
    properties: { x: ANY_JSON },
    additionalProperties: false,
  });
  // A self-referencing schema ends in "any" instead of recursing forever.
  const loop = toGrammarSchema({
    $defs: { N: { type: "array", items: { $ref: "#/$defs/N" } } },
    $ref: "#/$defs/N",
  });
  assert.ok(JSON.stringify(loop).includes('"additionalProperties":true'));
});

test("llama.cpp builds a grammar for every converted OpenClaw tool schema", async () => {
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  try {
    for (const tool of OPENCLAW_TOOLS) {
      const schema = toGrammarSchema(tool.function.parameters);
      assert.ok(schema, tool.function.name);
      const grammar = await llama.createGrammarForJsonSchema<GbnfJsonSchema>(schema);
      assert.ok(grammar.grammar.length > 0, tool.function.name);
    }
  } finally {
    await llama.dispose();
  }
});
