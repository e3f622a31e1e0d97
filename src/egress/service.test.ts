import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { renderEgressConfig } from "./config.ts";
import type { EgressPolicy } from "./policy.ts";
import { type EgressTenants, PolicyQueue, startEgressService } from "./service.ts";

let dir = "";
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "ck-egress-svc-"));
});
after(() => rm(dir, { recursive: true, force: true }));

const policyOf = (tenants: EgressTenants): EgressPolicy => ({
  tenants: tenants.map((t) => ({ name: t.tenant, addresses: [t.address], airGapped: t.airGapped })),
});
const alice = { tenant: "alice", address: "10.250.0.11", airGapped: false };
const bob = { tenant: "bob", address: "10.250.0.12", airGapped: false };
const until = async (f: () => boolean | Promise<boolean>, what: string, ms = 30_000) => {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

/** A proxy whose first send is slow: the order in which sends land. */
function slowFirstProxy() {
  const landed: string[][] = [];
  let calls = 0;
  const send = async (p: EgressPolicy) => {
    const slow = calls++ === 0;
    await new Promise((r) => setTimeout(r, slow ? 150 : 5));
    landed.push(p.tenants.map((t) => t.name));
  };
  return { landed, send };
}

test("the policy queue: a slow earlier setPolicy never lands after a later one", async () => {
  const q = slowFirstProxy();
  const queue = new PolicyQueue(q.send, policyOf);
  await Promise.all([queue.setTenants([alice]), queue.setTenants([alice, bob])]);
  assert.deepEqual(q.landed.at(-1), ["alice", "bob"], "the latest tenants land last");

  // Control: the same two calls sent straight away land in the wrong order.
  const naive = slowFirstProxy();
  await Promise.all([naive.send(policyOf([alice])), naive.send(policyOf([alice, bob]))]);
  assert.deepEqual(naive.landed.at(-1), ["alice"], "control: without the queue the slow old policy wins");
});

test("the policy queue: a failed send fails its caller and does not block the next", async () => {
  let fail = true;
  const landed: number[] = [];
  const queue = new PolicyQueue(async (p) => {
    if (fail) throw new Error("proxy down");
    landed.push(p.tenants.length);
  }, policyOf);
  await assert.rejects(queue.setTenants([alice]), /proxy down/);
  fail = false;
  await queue.refresh();
  assert.deepEqual(landed, [1], "refresh() sends the latest tenants again");
});

async function config(name: string): Promise<string> {
  const configPath = join(dir, `${name}.json`);
  await writeFile(
    configPath,
    renderEgressConfig({
      listen: { host: "127.0.0.1", port: 0 },
      adminSocket: join(dir, name, "admin.sock"),
      logFile: join(dir, `${name}.log`),
      policy: { tenants: [] },
    }),
  );
  return configPath;
}

test("the egress service: a killed proxy is restarted and given the last policy again; stop() does not restart", async () => {
  const svc = await startEgressService({
    configPath: await config("restart"),
    policyOf,
    restart: { initialMs: 100, maxMs: 400 },
    startTimeoutMs: 60_000,
  });
  try {
    assert.match(svc.proxyUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal((await svc.admin.getPolicy()).tenants.length, 0, "control: a fresh proxy knows no tenant");
    await svc.setTenants([alice, bob]);
    assert.equal((await svc.admin.getPolicy()).tenants.length, 2);

    const first = svc.pid!;
    process.kill(first, "SIGKILL");
    await until(() => svc.restarts === 1 && svc.state === "running", "the restart", 60_000);
    assert.notEqual(svc.pid, first);
    await until(
      async () => (await svc.admin.getPolicy().catch(() => ({ tenants: [] }))).tenants.length === 2,
      "the last policy to be sent again",
    );
    assert.deepEqual((await svc.admin.getPolicy()).tenants.map((t) => t.name).sort(), ["alice", "bob"]);
  } finally {
    await svc.stop();
  }
  assert.equal(svc.state, "stopped");
  assert.equal(svc.pid, undefined);
  await new Promise((r) => setTimeout(r, 600)); // more than the backoff
  assert.equal(svc.restarts, 1, "no restart after stop()");
  assert.equal(svc.pid, undefined);
  assert.equal(await svc.exited, 0, "SIGTERM: the proxy stops cleanly");
});
