import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { planFor } from "../../core/plans.ts";
import type { Tier } from "../../core/tenant.ts";
import type { InstanceSpec } from "../types.ts";
import type { TenantVolumes } from "./types.ts";

export interface VolumesConformanceOptions {
  label: string;
  volumes: () => TenantVolumes;
  /** The tier of the specs the suite opens volumes for (their plan's volume size). */
  tier: Tier;
  /** The uid the tenant's directory is handed to. */
  ownerUid: number;
  /** Whether the data is encrypted at rest: then it is unreadable once the volume is closed. */
  encrypted: boolean;
  /** What must exist before a tenant's volume opens (its key in the key service). */
  provision?: (spec: InstanceSpec) => Promise<void>;
  skip?: string;
}

/**
 * The behaviour every TenantVolumes promises (types.ts), as one suite each implementation runs:
 * close and destroy of an absent volume succeed; open is idempotent and returns a directory
 * owned by ownerUid; close keeps the data (and, encrypted, locks it: unreadable until the next
 * open); destroy removes it, so a later open starts empty.
 */
export function volumesConformance(opts: VolumesConformanceOptions): void {
  const id = randomBytes(3).toString("hex");
  const spec = (n: string): InstanceSpec => ({
    tenantId: `tnt_vconf_${id}_${n}`,
    name: `vconf-${id}-${n}`,
    tier: opts.tier,
    slot: 0,
    plan: planFor(opts.tier),
    llm: { baseUrl: "http://127.0.0.1:9/v1", model: "m" },
  });
  const skip = opts.skip ? { skip: opts.skip } : {};

  test(`${opts.label}: close and destroy of an absent volume succeed`, skip, async () => {
    const v = opts.volumes();
    await v.close(spec("none").name);
    await v.destroy(spec("none").name);
  });

  test(
    `${opts.label}: open is idempotent, owned by the tenant; close keeps the data${opts.encrypted ? " locked" : ""}; destroy removes it`,
    skip,
    async () => {
      const v = opts.volumes();
      const s = spec("a");
      await opts.provision?.(s);
      try {
        const dir = await v.open(s, opts.ownerUid);
        assert.equal(await v.open(s, opts.ownerUid), dir, "a second open returns the same directory");
        const st = await stat(dir);
        assert.ok(st.isDirectory());
        assert.equal(st.uid, opts.ownerUid, "the directory belongs to the tenant");
        const note = join(dir, "note");
        const text = `kept-${randomBytes(6).toString("hex")}`;
        await writeFile(note, text);

        await v.close(s.name);
        await v.close(s.name);
        if (opts.encrypted) {
          const locked = await readFile(note, "utf8").catch(() => null);
          assert.notEqual(locked, text, "closed, the data cannot be read");
        } else {
          assert.equal(await readFile(note, "utf8"), text, "closed, plain data stays where it is");
        }
        const reopened = await v.open(s, opts.ownerUid);
        assert.equal(reopened, dir);
        assert.equal(await readFile(join(reopened, "note"), "utf8"), text, "close kept the data");

        await v.destroy(s.name);
        await v.destroy(s.name);
        assert.equal(await readFile(note, "utf8").catch(() => null), null, "destroyed, the data is gone");
        const fresh = await v.open(s, opts.ownerUid);
        assert.equal(
          await readFile(join(fresh, "note"), "utf8").catch(() => null),
          null,
          "destroy removed the data",
        );
      } finally {
        await v.destroy(s.name).catch(() => {});
      }
    },
  );
}
