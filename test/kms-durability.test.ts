import assert from "node:assert/strict";
import { randomInt } from "node:crypto";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { after, test } from "node:test";
import type { Tier } from "../src/core/tenant.ts";
import { KmsError } from "../src/kms/errors.ts";
import { killAll, removeTempDirs, type ServiceUnderTest, startService, tempDir } from "../src/kms/testing.ts";

after(async () => {
  await killAll();
  await removeTempDirs();
});

const TIERS: Tier[] = ["starter", "premium", "enterprise"];
const ctx = (tenantId: string) => ({ tenantId, purpose: "gateway-token" });

test("a key service killed with SIGKILL mid-operation comes back with every key whose create returned", async () => {
  const base = await tempDir("ck-kms-kill-");
  const dir = join(base, "store");
  const socket = join(base, "run", "kms.sock");
  /** Tenants whose createTenantKeys returned success. */
  const created = new Set<string>();
  /** Their volume keys and a value sealed for each, as the service returned them before any kill. */
  const volume = new Map<string, Buffer>();
  const sealed = new Map<string, Buffer>();
  /** Tenants whose create was sent but had not returned when the service died. */
  const unsure = new Set<string>();
  let next = 0;
  let svc: ServiceUnderTest = await startService({ dir, socket });
  let killsMidOperation = 0;
  try {
    const createOne = async (s: ServiceUnderTest) => {
      const n = next++;
      const id = `tnt_k${n}`;
      unsure.add(id);
      await s.client.createTenantKeys(id, TIERS[n % 3]!);
      unsure.delete(id);
      created.add(id);
      const v = await s.client.getVolumeKey(id);
      volume.set(id, v);
      sealed.set(id, await s.client.seal(Buffer.from(`sealed for ${id}`), ctx(id)));
    };
    for (let i = 0; i < 8; i++) await createOne(svc);

    for (let round = 0; round < 3; round++) {
      const s = svc;
      let ok = 0;
      let pending = 0;
      const target = randomInt(6, 16);
      let killed: Promise<void> | undefined;
      const worker = async (w: number) => {
        for (;;) {
          pending++;
          try {
            // Mostly creates; some KEK rotations, which rewrite existing tenants' entries.
            if (w === 0 && ok % 3 === 1) {
              const premium = [...created].filter((t) => Number(t.slice(5)) % 3 !== 0);
              await s.client.rotateKek(premium[randomInt(premium.length)]!);
            } else if (w === 1 && ok % 5 === 2) {
              await s.client.rotateStarterKek();
            } else {
              await createOne(s);
            }
            ok++;
          } catch (err) {
            if (!killed) throw err;
            return;
          } finally {
            pending--;
          }
          if (ok >= target && !killed) {
            if (pending > 0) killsMidOperation++;
            killed = s.kill();
          }
          if (killed) return;
        }
      };
      await Promise.all([0, 1, 2, 3].map(worker));
      await killed;
      svc = await startService({ dir, socket });
      for (const id of created) {
        const v = await svc.client.getVolumeKey(id);
        if (volume.has(id)) assert.deepEqual(v, volume.get(id), `round ${round}: ${id}'s volume key changed`);
        else volume.set(id, v);
        const sv = sealed.get(id);
        if (sv) assert.equal((await svc.client.unseal(sv, ctx(id))).toString(), `sealed for ${id}`);
      }
      for (const id of unsure) {
        // A create cut off by the kill either happened completely or not at all.
        try {
          assert.equal((await svc.client.getVolumeKey(id)).length, 64);
        } catch (err) {
          assert.ok(
            err instanceof KmsError && err.reason === "unknown_tenant",
            `${id}: ${(err as Error).message}`,
          );
        }
      }
      unsure.clear();
      const leftovers = (await readdir(dir, { recursive: true })).filter((f) => f.endsWith(".tmp"));
      assert.deepEqual(leftovers, [], "start-up removed the temporary files the kill left");
    }
    assert.ok(created.size >= 8 + 3 * 3, `created ${created.size} tenants`);
    assert.ok(killsMidOperation >= 1, "at least one kill landed while calls were in flight");
  } finally {
    await svc.stop();
  }
});
