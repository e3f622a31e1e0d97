import assert from "node:assert/strict";
import { test } from "node:test";
import { startEchoProvider, userWords } from "./echo-provider.ts";

test("userWords keeps what the person typed out of OpenClaw's wrapping", () => {
  assert.equal(userWords("[Sat 2026-11-28 19:34 UTC] hello there\n\nRuntime: agent=main | x"), "hello there");
  assert.equal(
    userWords("<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>\nstuff\n<<<END_OPENCLAW_INTERNAL_CONTEXT>>>"),
    "",
  );
  assert.equal(userWords("plain"), "plain");
});

test("the provider answers plain and streamed chats, lists its model, and checks the key", async () => {
  const p = await startEchoProvider({ apiKey: "k", replyPrefix: "r: " });
  try {
    const body = JSON.stringify({
      model: p.model,
      messages: [
        { role: "system", content: "sys" },
        { role: "user", content: "[Sat 2026-11-28 19:34 UTC] hi\n\nRuntime: x" },
        {
          role: "user",
          content: [
            {
              type: "text",
              text: "<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>x<<<END_OPENCLAW_INTERNAL_CONTEXT>>>",
            },
          ],
        },
      ],
    });
    const h = { authorization: "Bearer k", "content-type": "application/json" };
    const plain = (await (
      await fetch(`${p.url}/chat/completions`, { method: "POST", headers: h, body })
    ).json()) as {
      choices: { message: { content: string } }[];
    };
    assert.equal(plain.choices[0]!.message.content, "r: hi");
    const sse = await (
      await fetch(`${p.url}/chat/completions`, {
        method: "POST",
        headers: h,
        body: body.replace("{", '{"stream":true,'),
      })
    ).text();
    assert.match(sse, /"content":"r: hi"/);
    assert.match(sse, /data: \[DONE\]/);
    assert.equal((await fetch(`${p.url}/models`, { headers: h })).status, 200);
    assert.equal((await fetch(`${p.url}/models`, { headers: { authorization: "Bearer nope" } })).status, 401);
    assert.equal(p.requests.length, 2);
  } finally {
    await p.close();
  }
});
