/**
 * Key service cost: getVolumeKey over the unix socket (the isolated process) vs an in-process
 * AES-256-GCM unwrap of the same 64-byte key, measured side by side in one run, plus the full key
 * tree in process (KmsEngine: two unwraps and an audit line) to show where the time goes.
 * Run: npx tsx bench/kms.ts   (about 30 s; loopback unix socket only)
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KmsEngine } from "../src/kms/engine.ts";
import { unwrapKey, type WrapContext, wrapKey } from "../src/kms/format.ts";
import { startKmsProcess } from "../src/kms/supervisor.ts";
import { opsPerSecond } from "./support.ts";

const SLICE_MS = 2000;
const ROUNDS = 3;

/** Runs `op` with `concurrency` callers for `ms`; returns operations per second. */
async function rate(op: () => unknown, ms: number, concurrency = 1): Promise<number> {
  for (let i = 0; i < 20; i++) await op();
  return opsPerSecond(op, ms, concurrency);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (x: number) => Math.round(x).toLocaleString("en-US").padStart(10);

const base = await mkdtemp(join(tmpdir(), "ck-kms-bench-"));
const kms = await startKmsProcess({
  dir: join(base, "store"),
  socket: join(base, "run", "kms.sock"),
  output: "ignore",
});
const engine = await KmsEngine.open({ dir: join(base, "engine-store") });
try {
  await kms.client.createTenantKeys("tnt_bench", "premium");
  await engine.createTenantKeys("tnt_bench", "premium");
  const kek = randomBytes(32);
  const ctx: WrapContext = {
    kind: "volume",
    owner: "tnt_bench",
    keyId: "0011223344556677",
    version: 1,
    wrappingKeyId: "8899aabbccddeeff",
    wrappingVersion: 1,
  };
  const wrapped = wrapKey(kek, randomBytes(64), ctx);

  const cases: Record<string, { run: () => Promise<number>; samples: number[] }> = {
    "in-process AES-GCM unwrap": {
      run: () => rate(() => unwrapKey(kek, wrapped, ctx, "bench").fill(0), SLICE_MS),
      samples: [],
    },
    "in-process key tree (KmsEngine)": {
      run: () => rate(async () => (await engine.getVolumeKey("tnt_bench")).fill(0), SLICE_MS),
      samples: [],
    },
    "KMS over socket, 1 caller": {
      run: () => rate(async () => (await kms.client.getVolumeKey("tnt_bench")).fill(0), SLICE_MS),
      samples: [],
    },
    "KMS over socket, 8 callers": {
      run: () => rate(async () => (await kms.client.getVolumeKey("tnt_bench")).fill(0), SLICE_MS, 8),
      samples: [],
    },
  };
  // Interleaved rounds, so load from elsewhere on the machine hits every case alike.
  for (let r = 0; r < ROUNDS; r++) for (const c of Object.values(cases)) c.samples.push(await c.run());

  const ref = median(cases["in-process AES-GCM unwrap"]!.samples);
  console.log(
    `getVolumeKey (64-byte volume key), median of ${ROUNDS} interleaved ${SLICE_MS / 1000} s slices`,
  );
  console.log(`${"".padEnd(34)}${"ops/s".padStart(10)}  ${"us/op".padStart(8)}  vs in-process unwrap`);
  for (const [name, c] of Object.entries(cases)) {
    const m = median(c.samples);
    console.log(
      `${name.padEnd(34)}${fmt(m)}  ${(1e6 / m).toFixed(1).padStart(8)}  ${(ref / m).toFixed(1).padStart(7)}x slower`,
    );
  }
  const sock = median(cases["KMS over socket, 1 caller"]!.samples);
  console.log(`ratio: in-process AES-GCM unwrap / KMS over socket = ${(ref / sock).toFixed(1)} (1 caller)`);
} finally {
  await engine.close();
  await kms.stop();
  await rm(base, { recursive: true, force: true });
}
