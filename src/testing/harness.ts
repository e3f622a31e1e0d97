import { createApi } from "../control/api.ts";
import { createControlPlane } from "../control/control-plane.ts";
import type { EgressReader } from "../control/tenants.ts";
import { FakeKeyService } from "../kms/fake.ts";
import { createLogger } from "../lib/log.ts";
import { FakeDriver } from "../runtime/fake/driver.ts";
import type { RuntimeDriver } from "../runtime/types.ts";
import { openDatabase } from "../store/db.ts";
import { TenantStore } from "../store/tenants.ts";

/** An in-process control plane over an in-memory database and the fake driver, for fast tests. */
export function makeControlPlane(
  opts: {
    driver?: RuntimeDriver;
    store?: TenantStore;
    clock?: () => number;
    startAttempts?: number;
    startConcurrency?: number;
    readyTimeoutMs?: number;
    maxSlots?: number;
    egress?: EgressReader;
  } = {},
) {
  const store = opts.store ?? new TenantStore(openDatabase(":memory:"));
  const driver = opts.driver ?? new FakeDriver();
  // The real key tree, recording calls: a control plane that forgets to make or destroy a
  // tenant's keys fails a test.
  const kms = FakeKeyService.createNow();
  const log = createLogger("silent");
  const { specs, reconciler, tenants, llm, llmStore } = createControlPlane({
    store,
    driver,
    kms,
    llm: { baseUrl: "http://127.0.0.1:9/v1", model: "m" },
    tuning: {
      startConcurrency: opts.startConcurrency ?? 1,
      startAttempts: opts.startAttempts ?? 2,
      readyTimeoutMs: opts.readyTimeoutMs ?? 3000,
      intervalMs: 50,
      backoffBaseMs: 20,
      backoffMaxMs: 100,
    },
    maxSlots: opts.maxSlots ?? 50,
    log,
    ...(opts.clock ? { clock: opts.clock } : {}),
    ...(opts.egress ? { egress: () => opts.egress ?? null } : {}),
  });
  return {
    store,
    driver,
    kms,
    reconciler,
    specs,
    tenants,
    llm,
    llmStore,
    publicApi: createApi({ mode: "public", tenants, llm, log }),
    adminApi: createApi({ mode: "admin", tenants, llm, log }),
  };
}

/** Polls until check() returns a truthy value or the time runs out. */
export async function eventually<T>(
  check: () => T | Promise<T>,
  timeoutMs = 5000,
  what = "condition",
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
}
