import assert from "node:assert/strict";
import { test } from "node:test";
import { ModelServerError } from "./errors.ts";
import { SequencePool } from "./pool.ts";

test("hands out each item once and gives it back on release", async () => {
  const pool = new SequencePool(["a", "b"], 4);
  const x = await pool.acquire();
  const y = await pool.acquire();
  assert.notEqual(x.item, y.item);
  assert.equal(pool.busy, 2);
  x.release();
  x.release(); // a second release is ignored
  assert.equal(pool.busy, 1);
  const z = await pool.acquire();
  assert.equal(z.item, x.item);
});

test("waiters are served first in, first out", async () => {
  const pool = new SequencePool(["only"], 4);
  const held = await pool.acquire();
  const order: number[] = [];
  const w1 = pool.acquire().then((l) => {
    order.push(1);
    return l;
  });
  const w2 = pool.acquire().then((l) => {
    order.push(2);
    return l;
  });
  assert.equal(pool.queued, 2);
  held.release();
  (await w1).release();
  (await w2).release();
  assert.deepEqual(order, [1, 2]);
  assert.equal(pool.busy, 0);
});

test("a full queue refuses at once with busy (429), and the control case waits", async () => {
  const pool = new SequencePool(["only"], 1);
  const held = await pool.acquire();
  const waiting = pool.acquire();
  await assert.rejects(
    pool.acquire(),
    (err: unknown) => err instanceof ModelServerError && err.reason === "busy",
  );
  held.release();
  (await waiting).release();
});

test("an aborted waiter leaves the queue and gets the abort reason", async () => {
  const pool = new SequencePool(["only"], 4);
  const held = await pool.acquire();
  const ac = new AbortController();
  const waiting = pool.acquire({ signal: ac.signal });
  assert.equal(pool.queued, 1);
  ac.abort(new Error("client left"));
  await assert.rejects(waiting, /client left/);
  assert.equal(pool.queued, 0);
  held.release();
  assert.equal(pool.busy, 0, "the released item went back to idle, not to the aborted waiter");
});

test("prefers the idle item released with the same affinity, else the least recently used", async () => {
  const pool = new SequencePool(["a", "b", "c"], 4);
  const a = await pool.acquire();
  const b = await pool.acquire();
  const c = await pool.acquire();
  a.release("sys-1");
  b.release("sys-2");
  c.release();
  const again = await pool.acquire({ affinity: "sys-2" });
  assert.equal(again.item, "b");
  const lru = await pool.acquire({ affinity: "unknown" });
  assert.equal(lru.item, "a", "a was used longest ago");
  again.release();
  lru.release();
});

test("close rejects waiters and new acquires with unavailable", async () => {
  const pool = new SequencePool(["only"], 4);
  const held = await pool.acquire();
  const waiting = pool.acquire();
  pool.close();
  await assert.rejects(
    waiting,
    (err: unknown) => err instanceof ModelServerError && err.reason === "unavailable",
  );
  await assert.rejects(
    pool.acquire(),
    (err: unknown) => err instanceof ModelServerError && err.reason === "unavailable",
  );
  held.release();
});
