import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { request } from "node:http";
import { join } from "node:path";
import { test } from "node:test";
import { useTempDir } from "../testing/temp-dir.ts";
import { renderRelayConfig } from "./config.ts";
import { startRelayService } from "./service.ts";
import { FAKE_MODELS, fakeOpenAi, stateOf, tenantEntry, upstreamEntry } from "./testing.ts";

const dir = useTempDir("ck-relay-svc-");
const until = async (f: () => boolean | Promise<boolean>, what: string, ms = 60_000) => {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

/** POSTs a chat through the relay from 127.0.0.1 (no PROXY line: a host-mode tenant). */
function chat(
  url: string,
  model = "m",
  stream = false,
): Promise<{ status: number; body: string; error?: Error }> {
  return new Promise((resolve) => {
    const payload = JSON.stringify({ model, stream, messages: [{ role: "user", content: "hi" }] });
    const req = request(
      `${url}/v1/chat/completions`,
      { method: "POST", headers: { authorization: "Bearer ckv_host", "content-type": "application/json" } },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          body += d;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        res.on("error", (error) => resolve({ status: res.statusCode ?? 0, body, error }));
        res.on("aborted", () => resolve({ status: res.statusCode ?? 0, body, error: new Error("aborted") }));
      },
    );
    req.on("error", (error) => resolve({ status: 0, body: "", error }));
    req.end(payload);
  });
}

test("the relay service: killed -> restarted -> its state pushed again -> a chat works; a stream cut by the kill ends with an error", async () => {
  const provider = await fakeOpenAi({ apiKey: "sk-operator" });
  const configPath = join(dir(), "relay.json");
  await writeFile(
    configPath,
    renderRelayConfig({
      listen: { host: "127.0.0.1", port: 0 },
      adminSocket: join(dir(), "run", "relay.sock"),
    }),
  );
  let pushes = 0;
  const svc = await startRelayService({
    configPath,
    restart: { initialMs: 100, maxMs: 400 },
    startTimeoutMs: 60_000,
    state: () => {
      pushes++;
      return stateOf(
        [
          tenantEntry(
            "host",
            "ckv_host",
            ["127.0.0.1"],
            [
              { id: "m", upstream: "u" },
              { id: FAKE_MODELS.hang, upstream: "u" },
            ],
          ),
        ],
        [upstreamEntry("u", provider, "sk-operator", "openai", ["m"])],
      );
    },
  });
  try {
    assert.equal(pushes, 1, "the state is pushed before the service counts as ready");
    assert.equal((await svc.health()).stateLoaded, true);
    assert.equal((await chat(svc.url)).status, 200);

    // A stream in flight when the relay dies ends with an error, not a silent success.
    const cut = chat(svc.url, FAKE_MODELS.hang, true);
    await until(
      () => provider.requests.some((r) => r.body.model === FAKE_MODELS.hang),
      "the stream to start",
    );
    const first = svc.pid!;
    process.kill(first, "SIGKILL");
    const broken = await cut;
    assert.ok(broken.error, "the cut stream reports an error");
    assert.doesNotMatch(broken.body, /\[DONE\]/);

    await until(() => svc.restarts === 1 && svc.state === "running", "the restart");
    assert.notEqual(svc.pid, first);
    assert.equal(pushes, 2, "the state was pushed again after the restart");
    assert.equal((await svc.health()).tenants, 1);
    const again = await chat(svc.url);
    assert.equal(again.status, 200, `a chat after the restart: ${again.body}`);
    const batch = await svc.drain();
    assert.equal(
      batch.usage[0]?.requests,
      1,
      "the new process counts from zero (the old one's usage was never drained)",
    );
    assert.deepEqual((await svc.drain()).usage, [], "drain() without persist acknowledged the batch");
  } finally {
    await svc.stop();
    await provider.close();
  }
  assert.equal(svc.state, "stopped");
  await new Promise((r) => setTimeout(r, 600));
  assert.equal(svc.restarts, 1, "no restart after stop()");
  assert.equal(await svc.exited, 0, "SIGTERM: the relay stops cleanly");
});

test("the relay service: a first start that fails throws start_failed with the process's stderr", async () => {
  const configPath = join(dir(), "bad.json");
  await writeFile(configPath, '{"listen": 1}');
  await assert.rejects(
    startRelayService({ configPath, state: () => stateOf([], []), startTimeoutMs: 60_000 }),
    (err: Error & { reason?: string }) => {
      assert.equal(err.reason, "start_failed");
      assert.match(err.message, /invalid relay config: listen/);
      return true;
    },
  );
});
