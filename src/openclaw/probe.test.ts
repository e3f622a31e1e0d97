import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { probe, waitReady } from "./probe.ts";

/** A gateway stand-in whose /readyz answers 503 until `ready` is set. */
async function gateway() {
  const state = { ready: false, probes: 0 };
  const server = createServer((req, res) => {
    if (req.url === "/readyz") state.probes++;
    res.writeHead(state.ready ? 200 : 503).end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { state, url, close: () => new Promise<void>((r) => server.close(() => r())) };
}

test("waitReady probes often but asks alive() at most every aliveEveryMs", async () => {
  const g = await gateway();
  let aliveCalls = 0;
  try {
    setTimeout(() => {
      g.state.ready = true;
    }, 700);
    const t0 = Date.now();
    await waitReady(g.url, {
      timeoutMs: 10_000,
      intervalMs: 10,
      aliveEveryMs: 300,
      alive: async () => {
        aliveCalls++;
        return true;
      },
    });
    const elapsed = Date.now() - t0;
    assert.ok(aliveCalls >= 1, "alive() was asked");
    assert.ok(
      aliveCalls <= Math.floor(elapsed / 300) + 1,
      `alive() asked ${aliveCalls} times in ${elapsed} ms`,
    );
    assert.ok(g.state.probes > 3 * aliveCalls, `${g.state.probes} probes, ${aliveCalls} alive() calls`);
  } finally {
    await g.close();
  }
});

test("waitReady gives up once alive() says the gateway is gone", async () => {
  const g = await gateway();
  try {
    const t0 = Date.now();
    await assert.rejects(
      waitReady(g.url, { timeoutMs: 10_000, intervalMs: 10, aliveEveryMs: 100, alive: async () => false }),
      /exited before it was ready/,
    );
    assert.ok(Date.now() - t0 < 2000, "well before the timeout");
  } finally {
    await g.close();
  }
});

test("the probe does not follow a redirect the gateway answers with: 3xx is not ready, and the target is never asked", async () => {
  let targetHits = 0;
  const target = createServer((_req, res) => {
    targetHits++;
    res.writeHead(200).end("ok");
  });
  await new Promise<void>((r) => target.listen(0, "127.0.0.1", r));
  const targetUrl = `http://127.0.0.1:${(target.address() as AddressInfo).port}/readyz`;
  const hostile = createServer((_req, res) => {
    res.writeHead(302, { location: targetUrl }).end();
  });
  await new Promise<void>((r) => hostile.listen(0, "127.0.0.1", r));
  const hostileUrl = `http://127.0.0.1:${(hostile.address() as AddressInfo).port}`;
  try {
    const r = await probe(hostileUrl);
    assert.deepEqual(r, { ok: false, reason: "/readyz answered 302" });
    assert.equal(targetHits, 0, "the redirect's target was never fetched");
    // Control: fetch's default follows it, which is what the probe must not do.
    const followed = await fetch(new URL("/readyz", hostileUrl));
    assert.equal(followed.status, 200);
    assert.equal(targetHits, 1);
  } finally {
    await new Promise<void>((r) => hostile.close(() => r()));
    await new Promise<void>((r) => target.close(() => r()));
  }
});
