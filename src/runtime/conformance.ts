import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { lstat, open, readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { Secret } from "../core/secret.ts";
import type { LlmProvider } from "../openclaw/config.ts";
import { waitReady } from "../openclaw/probe.ts";
import type { InstanceSpec, InstanceStatus, RuntimeDriver } from "./types.ts";

/** A spec for the suite to run with; the suite gives each its own name and tenant id, and the LLM. */
export type ConformanceSpec = Omit<InstanceSpec, "name" | "tenantId" | "llm">;

export interface DriverConformanceOptions {
  label: string;
  /** The driver under test (called again for each test: it may return the same object). */
  driver: () => RuntimeDriver;
  /** A new driver object over the same substrate: a restarted control plane. */
  fresh: () => RuntimeDriver;
  /** The specs to run the lifecycle with: one per tier the driver serves, each its own slot. */
  specs: ConformanceSpec[];
  /** The LLM provider of every spec (asked for when a test runs, after the suite's before hooks). */
  llm: () => LlmProvider;
  readyTimeoutMs?: number;
  /** How long a killed gateway may take to show as `exited` (default 30 s). */
  exitTimeoutMs?: number;
  /**
   * What the control plane does for a tenant before its driver sees it (its key tree in the key
   * service), run before each spec's lifecycle.
   */
  provision?: (spec: InstanceSpec) => Promise<void>;
  /** Extra checks that nothing of the instance is left on the substrate. */
  leftovers?: (name: string) => Promise<string[]>;
  /**
   * Ends the gateway's process as a crash would, given the pid status() reports. Default: SIGKILL
   * to that pid, for drivers whose pids are host pids.
   */
  kill?: (pid: number, name: string) => Promise<void>;
  /**
   * The driver's own directories on disk (data, config, records, logs; not a tmpfs it keeps
   * secrets on), scanned for the instance's secrets while it runs. Absent: the driver writes no
   * files, and the scan is skipped (saying so).
   */
  dataDirs?: () => string[];
}

/** How soon a call given an already-aborted signal must reject. */
const PROMPT_MS = 5000;
/** Bounds of the secrets scan: files looked at, and bytes read from each. */
const SCAN_MAX_FILES = 20_000;
const SCAN_MAX_BYTES = 32 * 1024 * 1024;

/**
 * The behaviour every runtime driver promises (see types.ts), as one suite each driver runs:
 * idempotent create/start/stop/delete, no second copy, adoption by a fresh driver object,
 * abort, `exited` after a crash and a start that brings it back, urlFor equal to status().url,
 * no secret in the driver's files, nothing left after delete. The lifecycle runs once per spec
 * (one per tier), with two gateway starts each: the first, and the one after the crash.
 */
export function driverConformance(opts: DriverConformanceOptions) {
  assert.ok(opts.specs.length > 0, "driverConformance needs at least one spec");
  const id = randomBytes(3).toString("hex");
  const named = (s: ConformanceSpec, i: number): InstanceSpec => ({
    ...s,
    name: `conf-${id}-${i}`,
    tenantId: `tnt_conf_${id}_${i}`,
    llm: opts.llm(),
  });
  const unknown = `conf-${id}-none`;

  test(`${opts.label}: an unknown instance is absent, and stop/delete of it succeed`, async () => {
    const d = opts.driver();
    assert.equal((await d.status(unknown)).state, "absent");
    await d.stop(unknown);
    await d.delete(unknown);
    assert.equal((await d.status(unknown)).state, "absent");
  });

  test(`${opts.label}: bad names never reach the substrate`, async () => {
    const d = opts.driver();
    const spec = named(opts.specs[0]!, 0);
    for (const bad of ["../x", "A", "a;rm", "", "x".repeat(41)]) {
      await assert.rejects(d.create({ ...spec, name: bad }), /tenant name/);
    }
  });

  opts.specs.forEach((s, i) => {
    const name = `conf-${id}-${i}`;
    const secrets = {
      gatewayToken: new Secret(`gw-${randomBytes(16).toString("hex")}`),
      llmApiKey: new Secret(`llm-${randomBytes(16).toString("hex")}`),
    };
    const label = `${opts.label}, ${s.tier} (slot ${s.slot})`;
    const ready = async (d: RuntimeDriver, st: InstanceStatus) => {
      assert.ok(st.url, "a running instance has a URL");
      await waitReady(st.url, {
        timeoutMs: opts.readyTimeoutMs ?? 10_000,
        alive: async () => (await d.status(name)).state === "running",
      }).catch(async (err: unknown) => {
        throw new Error(`${name}: ${(err as Error).message}\n${await d.logTail(name, 30).catch(() => "")}`);
      });
    };

    test(`${label}: aborted calls, lifecycle, crash, secrets and adoption`, async () => {
      const spec = named(s, i);
      await opts.provision?.(spec);
      const d = opts.driver();
      try {
        // Abort: a long call given a signal that has already aborted rejects at once, runs nothing.
        const aborted = AbortSignal.abort(new Error("conformance: aborted before the call"));
        await rejectsPromptly(d.create(spec, aborted), "create");
        assert.notEqual((await d.status(name)).state, "running", "an aborted create runs nothing");

        assert.equal((await d.create(spec)).state, "created");
        assert.equal((await d.create(spec)).state, "created");
        await rejectsPromptly(d.start(spec, secrets, aborted), "start");
        assert.notEqual((await d.status(name)).state, "running", "an aborted start runs nothing");
        assert.ok(!(await d.list()).some((x) => x.name === name && x.state === "running"));

        const s1 = await d.start(spec, secrets);
        assert.equal(s1.state, "running");
        await ready(d, s1);
        assert.equal(d.urlFor(spec), s1.url, "urlFor(spec) is where start() says it listens");
        assert.equal(d.urlFor(spec), (await d.status(name)).url, "urlFor(spec) equals status().url");

        if (opts.dataDirs) {
          const dirs = opts.dataDirs();
          const found = await secretsOnDisk(dirs, secrets, name);
          assert.deepEqual(found.hits, [], "no secret in any file under the driver's directories");
          assert.ok(found.control, "control: the same scan finds a marker planted in a file there");
        }

        const s2 = await d.start(spec, secrets);
        assert.equal(s2.pid, s1.pid, "a second start keeps the running process");

        const adopted = opts.fresh();
        const seen = await adopted.status(name);
        assert.equal(seen.state, "running", "a fresh driver object sees the running instance");
        assert.equal(seen.pid, s1.pid);
        assert.equal(
          (await adopted.start(spec, secrets)).pid,
          s1.pid,
          "a fresh driver does not start a second copy",
        );
        assert.ok((await adopted.list()).some((x) => x.name === name && x.state === "running"));

        // A crash: the gateway's process ends; status says exited (never absent); start() brings it back.
        assert.ok(s1.pid, "a running instance reports its pid");
        await (opts.kill ?? killHostPid)(s1.pid, name);
        await waitState(adopted, name, "exited", opts.exitTimeoutMs ?? 30_000);
        const s3 = await adopted.start(spec, secrets);
        assert.equal(s3.state, "running");
        assert.notEqual(s3.pid, s1.pid, "a new process");
        await ready(adopted, s3);
        assert.equal(adopted.urlFor(spec), (await adopted.status(name)).url);

        await adopted.stop(name);
        assert.equal((await d.status(name)).state, "created");
        await adopted.stop(name);
        await d.delete(name);
        await d.delete(name);
        assert.equal((await d.status(name)).state, "absent");
        assert.ok(!(await d.list()).some((x) => x.name === name));
        if (opts.leftovers) assert.deepEqual(await opts.leftovers(name), []);
      } finally {
        await d.delete(name).catch(() => {});
      }
    });
  });

  if (!opts.dataDirs)
    test(`${opts.label}: secrets never on disk`, {
      skip: "the driver writes no files (no dataDirs): nothing to scan",
    }, () => {});
}

async function killHostPid(pid: number): Promise<void> {
  process.kill(pid, "SIGKILL");
}

async function rejectsPromptly(call: Promise<unknown>, what: string): Promise<void> {
  const began = Date.now();
  await assert.rejects(call, `${what} with an aborted signal rejects`);
  const ms = Date.now() - began;
  assert.ok(ms < PROMPT_MS, `${what} with an aborted signal rejected after ${ms} ms, not at once`);
}

async function waitState(
  d: RuntimeDriver,
  name: string,
  want: InstanceStatus["state"],
  timeoutMs: number,
): Promise<InstanceStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = await d.status(name);
    if (st.state === want) return st;
    assert.notEqual(st.state, "absent", `${name} went absent while waiting for ${want}`);
    if (Date.now() > deadline) assert.fail(`${name} is ${st.state}, not ${want}, after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * Scans every regular file under dirs (no link followed, sockets and FIFOs skipped; at most
 * SCAN_MAX_FILES files, SCAN_MAX_BYTES of each) for the secrets. A marker file planted in the
 * first directory that exists proves the scan sees what is there; it is removed after.
 */
export async function secretsOnDisk(
  dirs: string[],
  secrets: { gatewayToken: Secret; llmApiKey: Secret },
  name: string,
): Promise<{ hits: string[]; control: boolean }> {
  const marker = `conformance-marker-${randomBytes(12).toString("hex")}`;
  const needles: Record<string, Buffer> = {
    "gateway token": Buffer.from(secrets.gatewayToken.reveal()),
    "LLM key": Buffer.from(secrets.llmApiKey.reveal()),
    marker: Buffer.from(marker),
  };
  let plantedAt: string | undefined;
  for (const dir of dirs) {
    if (!(await lstat(dir).catch(() => undefined))?.isDirectory()) continue;
    plantedAt = join(dir, `.${name}-conformance-marker`);
    await writeFile(plantedAt, `xx ${marker} xx`, { mode: 0o600 });
    break;
  }
  assert.ok(plantedAt, `none of the driver's directories exists: ${dirs.join(", ")}`);
  const hits: string[] = [];
  let control = false;
  let files = 0;
  try {
    const walk = async (dir: string): Promise<void> => {
      for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
        const p = join(dir, e.name);
        if (e.isDirectory()) await walk(p);
        else if (e.isFile()) {
          assert.ok(++files <= SCAN_MAX_FILES, `more than ${SCAN_MAX_FILES} files under ${dirs.join(", ")}`);
          for (const found of await scanHead(p, needles)) {
            if (found === "marker" && p === plantedAt) control = true;
            else hits.push(`${found} in ${p}`);
          }
        }
      }
    };
    for (const dir of dirs) await walk(dir);
  } finally {
    await rm(plantedAt, { force: true });
  }
  return { hits, control };
}

/** The needles found in the first SCAN_MAX_BYTES of a file. */
async function scanHead(path: string, needles: Record<string, Buffer>): Promise<string[]> {
  const fh = await open(path, "r").catch(() => undefined);
  if (!fh) return [];
  try {
    const buf = Buffer.alloc(Math.min(SCAN_MAX_BYTES, (await fh.stat()).size));
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    const head = buf.subarray(0, bytesRead);
    return Object.entries(needles)
      .filter(([, n]) => head.includes(n))
      .map(([k]) => k);
  } finally {
    await fh.close();
  }
}
