import assert from "node:assert/strict";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { errorOf, SocketClient } from "../service/socket-client.ts";
import { useTempDir } from "../testing/temp-dir.ts";
import { RelayAdminClient, serveRelayAdmin } from "./admin.ts";
import { startRelay } from "./server.ts";
import { fakeOpenAi, stateOf, tenantEntry } from "./testing.ts";

const dir = useTempDir("ck-relay-admin-");
const state = stateOf(
  [tenantEntry("alice", "ckv_a", ["127.0.0.1"], [{ id: "m", upstream: "u" }])],
  [{ id: "u", baseUrl: "http://127.0.0.1:9/v1", apiKey: "sk-operator", api: "openai", models: ["m"] }],
);

async function withAdmin(
  settableClock: boolean,
  fn: (c: RelayAdminClient, relay: Awaited<ReturnType<typeof startRelay>>, socket: string) => Promise<void>,
) {
  const relay = await startRelay();
  const socket = join(dir(), settableClock ? "clock" : "plain", "admin.sock");
  const admin = await serveRelayAdmin(relay, socket, { testOnlySettableClock: settableClock });
  const client = new RelayAdminClient(socket);
  try {
    await fn(client, relay, socket);
  } finally {
    client.close();
    await admin.close();
    await relay.close();
  }
}

test("the admin API: a 0600 socket; state replaced whole, an invalid one refused and the old kept; health", async () => {
  await withAdmin(false, async (c, _relay, socket) => {
    assert.equal((await stat(socket)).mode & 0o777, 0o600);
    assert.equal((await c.health()).stateLoaded, false);
    assert.deepEqual(await c.putState(state), { tenants: 1, upstreams: 1 });
    const h = await c.health();
    assert.equal(h.stateLoaded, true);
    assert.equal(h.tenants, 1);
    await assert.rejects(c.putState({ ...state, tenants: [{ ...state.tenants[0]!, keyHash: "x" }] }), {
      name: "RelayError",
      reason: "invalid_state",
      message: /tenants\.0\.keyHash/,
    });
    assert.equal((await c.health()).tenants, 1, "the old state stays");
  });
});

test("drain and ack over the socket: an unacknowledged batch comes again; an acknowledged one does not", async () => {
  const provider = await fakeOpenAi({ apiKey: "sk-operator" });
  try {
    await withAdmin(false, async (c, relay) => {
      await c.putState({ ...state, upstreams: [{ ...state.upstreams[0]!, baseUrl: provider.baseUrl }] });
      const r = await fetch(`${relay.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: "Bearer ckv_a", "content-type": "application/json" },
        body: JSON.stringify({ model: "m", messages: [] }),
      });
      assert.equal(r.status, 200);
      await r.arrayBuffer();
      const first = await c.drain();
      assert.deepEqual(
        first.usage.map((u) => [u.tenant, u.model, u.inputTokens, u.outputTokens, u.requests]),
        [["alice", "m", 7, 5, 1]],
      );
      const again = await c.drain();
      assert.equal(again.usage[0]?.requests, 1, "not acknowledged: handed out again, not lost");
      assert.equal(await c.ack(first.id), false, "a stale id forgets nothing");
      assert.equal(await c.ack(again.id), true);
      assert.deepEqual((await c.drain()).usage, [], "acknowledged: gone");
    });
  } finally {
    await provider.close();
  }
});

test("the test clock: only with testOnlySettableClock (control: 404 without)", async () => {
  await withAdmin(false, async (c) => {
    await assert.rejects(c.setClock(new Date("2030-01-01T00:00:00Z")), { reason: "not_found" });
  });
  await withAdmin(true, async (c, relay) => {
    await c.setClock(new Date("2030-01-01T00:00:00Z"));
    assert.ok(Math.abs(relay.now() - Date.parse("2030-01-01T00:00:00Z")) < 5_000);
  });
});

test("bad admin requests: the relay's error shape with a reason", async () => {
  await withAdmin(false, async (_c, _relay, socket) => {
    const raw = new SocketClient({ service: "the LLM relay", socketPath: socket });
    const cases: Array<[string, string, string | undefined, number, string]> = [
      ["GET", "/v1/nope", undefined, 404, "not_found"],
      ["DELETE", "/v1/state", undefined, 405, "method_not_allowed"],
      ["PUT", "/v1/state", "{not json", 400, "invalid_state"],
      ["POST", "/v1/usage/ack", "{}", 400, "invalid_state"],
    ];
    for (const [method, path, body, status, code] of cases) {
      const r = await raw.request({
        method,
        path,
        ...(body === undefined ? {} : { body: Buffer.from(body), contentType: "application/json" }),
      });
      assert.equal(r.status, status, `${method} ${path}`);
      assert.equal(errorOf(r)?.code, code);
    }
  });
});
