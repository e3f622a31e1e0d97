import assert from "node:assert/strict";
import { test } from "node:test";
import { choosePlacement, freeIndex, PoolCapacityError, poolCapacity } from "./placement.ts";

const GiB = 1024 ** 3;

test("capacity is the pool's memory over the plan's per-tenant bound, capped", () => {
  assert.equal(poolCapacity(16 * GiB, 1.5 * GiB, 64), 10);
  assert.equal(poolCapacity(3 * GiB, 1.5 * GiB, 64), 2);
  assert.equal(poolCapacity(64 * GiB, 0.5 * GiB, 64), 64);
  assert.equal(poolCapacity(1 * GiB, 1.5 * GiB, 64), 0);
});

test("a new tenant goes to the fullest pool with room, at its lowest free index", () => {
  const pools = [
    { index: 0, capacity: 3, used: [0] },
    { index: 1, capacity: 3, used: [0, 2] },
    { index: 2, capacity: 3, used: [0, 1, 2] },
  ];
  assert.deepEqual(choosePlacement(pools, { maxPools: 5, capacityOfNew: 3 }), {
    pool: 1,
    index: 1,
    newPool: false,
  });
  assert.equal(freeIndex(3, [0, 2]), 1);
  assert.equal(freeIndex(2, [0, 1]), undefined);
});

test("a new pool starts when all are full, at the lowest free pool number", () => {
  const full = [
    { index: 0, capacity: 2, used: [0, 1] },
    { index: 2, capacity: 2, used: [1, 0] },
  ];
  assert.deepEqual(choosePlacement(full, { maxPools: 5, capacityOfNew: 2 }), {
    pool: 1,
    index: 0,
    newPool: true,
  });
  assert.deepEqual(choosePlacement([], { maxPools: 1, capacityOfNew: 2 }), {
    pool: 0,
    index: 0,
    newPool: true,
  });
});

test("moving away from a pool skips it; no room anywhere is capacity_exhausted", () => {
  const pools = [{ index: 0, capacity: 2, used: [0] }];
  assert.deepEqual(choosePlacement(pools, { maxPools: 2, capacityOfNew: 2, exclude: 0 }), {
    pool: 1,
    index: 0,
    newPool: true,
  });
  assert.throws(
    () => choosePlacement([{ index: 0, capacity: 1, used: [0] }], { maxPools: 1, capacityOfNew: 1 }),
    (e: unknown) => e instanceof PoolCapacityError && e.code === "capacity_exhausted",
  );
  assert.throws(
    () => choosePlacement([], { maxPools: 3, capacityOfNew: 0 }),
    /does not hold even one tenant/,
  );
});
