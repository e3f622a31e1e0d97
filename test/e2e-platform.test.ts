import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { loadSettings, type Settings } from "../src/config/settings.ts";
import { unsealSecret, VIRTUAL_KEY_PURPOSE } from "../src/control/llm-keys.ts";
import { type Platform, startPlatform } from "../src/control/platform.ts";
import type { EgressView } from "../src/control/tenants.ts";
import type { TenantKeyService } from "../src/kms/service.types.ts";
import { type ExecError, execFile } from "../src/lib/exec.ts";
import { createLogger } from "../src/lib/log.ts";
import { pidsOfUid } from "../src/lib/procfs.ts";
import { type EchoProvider, startEchoProvider } from "../src/llm/echo-provider.ts";
import type { PoolDriver } from "../src/runtime/pool/driver.ts";
import type { TieredDriver } from "../src/runtime/tiered.ts";
import { chat, filesUnder, gatewayProcesses, needsRoot, scanFile } from "./support.ts";

/**
 * End to end with the platform as `npm start` runs it, real OpenClaw gateways included: two
 * Starter tenants created through the public API share one pool container (each its own gateway
 * process, uid and encrypted directory), each chats through its own gateway with its own token,
 * the provider reached through the egress proxy; a killed gateway comes back, a restarted control
 * plane adopts both, and delete shreds and leaves nothing behind.
 */
const skip = needsRoot();
const EDGE_HOST = "198.19.0.1";
/** The operator's provider key: it must reach the fake provider through the relay and no tenant. */
const OPERATOR_KEY = `sk-operator-${randomBytes(12).toString("hex")}`;
let home: string;
let env: NodeJS.ProcessEnv;
let tornDown = false;
let settings: Settings;
let provider: EchoProvider;
/** A tenant's own provider (bring your own key), with a key of the tenant's. */
let ownProvider: EchoProvider;
const TENANT_KEY = `sk-tenant-${randomBytes(12).toString("hex")}`;
let platform: Platform | undefined;
const log = createLogger(process.env.CLAWKEEP_TEST_LOG ?? "warn");
const created: Record<
  string,
  { apiToken: string; gateway: { url: string; publicUrl: string | null; token: string } }
> = {};
const dirs: Record<string, string> = {};

before(async () => {
  if (skip) return;
  home = await mkdtemp("/tmp/clawkeep-e2e-");
  provider = await startEchoProvider({ apiKey: OPERATOR_KEY, replyPrefix: "fake-llm: " });
  ownProvider = await startEchoProvider({ apiKey: TENANT_KEY, replyPrefix: "own-llm: " });
  env = {
    ...process.env,
    CLAWKEEP_HOME: home,
    CLAWKEEP_API_LISTEN: "127.0.0.1:0",
    CLAWKEEP_PORT_BASE: "31000",
    CLAWKEEP_LLM_BASE_URL: provider.url,
    CLAWKEEP_LLM_API_KEY: OPERATOR_KEY,
    CLAWKEEP_LLM_MODEL: provider.model,
    CLAWKEEP_LLM_BYOK_ALLOW: ownProvider.url,
    CLAWKEEP_RECONCILE_INTERVAL_MS: "500",
    CLAWKEEP_STARTER_POOL_MIB: "512",
    // Two Starter tenants (1.5 GiB each) per pool: alice and bob share one.
    CLAWKEEP_STARTER_POOL_MEMORY_MIB: "4096",
    // On the bridge address, not loopback: OpenClaw refuses proxied requests whose client is
    // loopback (it cannot attribute them), and real clients never are.
    CLAWKEEP_EDGE_LISTEN: "198.19.0.1:38443",
    CLAWKEEP_EGRESS_STATIC_HOSTS: JSON.stringify({ "allowed.test": ["192.0.2.1"] }),
  };
  settings = loadSettings(env);
  platform = await startPlatform(settings, log);
});

/** Host uids the tenants' gateways ran as, for the final sweep. */
const hostUids = new Set<number>();

after(async () => {
  if (skip) return;
  await platform?.close({ teardown: true }).catch((err) => console.error("teardown:", err));
  if (!platform && !tornDown) {
    // The teardown test did not finish: take down what the stopped control plane left running.
    await startPlatform(settings, log, { reconcile: false })
      .then((p) => p.close({ teardown: true }))
      .catch((err) => console.error("teardown:", err));
  }
  // Whatever happened above: no process of a test uid survives the suite.
  for (const uid of hostUids) {
    for (const pid of await pidsOfUid(uid)) {
      console.error(`teardown left pid ${pid} of uid ${uid}`);
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
  }
  await provider?.close();
  await ownProvider?.close();
  await rm(home, { recursive: true, force: true });
});

async function egressOf(name: string): Promise<EgressView> {
  const res = await fetch(`${platform!.apiUrl}/v1/tenants/${name}/egress`, {
    headers: { authorization: `Bearer ${created[name]!.apiToken}` },
  });
  assert.equal(res.status, 200);
  return (await res.json()) as EgressView;
}

/** The tenant's gateway's uid on the host (its pool maps its container uid there). */
async function hostUid(p: Platform, name: string): Promise<number> {
  const uid = Number((await p.driver.status(name)).details.hostUid);
  assert.ok(Number.isInteger(uid) && uid > 0, `${name} has a host uid`);
  hostUids.add(uid);
  return uid;
}

/** The tenant's directory on the host: on its pool's volume. */
async function hostDir(p: Platform, name: string): Promise<string> {
  const pool = String((await p.driver.status(name)).details.pool);
  assert.match(pool, /^pool-\d+$/);
  return join(home, "volumes", "mnt", `starter-${pool}`, "tenants", name);
}

async function waitRunning(p: Platform, name: string, timeoutMs = 240_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const t = p.store.get(name);
    if (t?.actual === "running") return;
    if (t?.actual === "failed") {
      throw new Error(`${name} failed: ${t.reason}\n${await p.driver.logTail(name, 30)}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(
    `${name} not running after ${timeoutMs} ms: ${JSON.stringify(p.store.get(name))}\n${await p.driver.logTail(name, 30)}`,
  );
}

test("two tenants created through the API both reach /readyz", { skip }, async () => {
  for (const name of ["alice", "bob"]) {
    const res = await fetch(`${platform!.apiUrl}/v1/tenants`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name, tier: "starter" }),
    });
    assert.equal(res.status, 201, await res.clone().text());
    created[name] = (await res.json()) as (typeof created)[string];
  }
  await waitRunning(platform!, "alice");
  await waitRunning(platform!, "bob");
  for (const name of ["alice", "bob"]) {
    const r = await fetch(`${created[name]!.gateway.url}/readyz`);
    assert.equal(r.status, 200);
  }
  assert.notEqual(created.alice!.gateway.url, created.bob!.gateway.url);
  // Starter: one shared pool container, a gateway process each, under different uids.
  const a = await platform!.driver.status("alice");
  const b = await platform!.driver.status("bob");
  assert.equal(a.details.pool, b.details.pool, "alice and bob share a pool");
  assert.equal(a.details.container, b.details.container);
  assert.notEqual(await hostUid(platform!, "alice"), await hostUid(platform!, "bob"));
  assert.notEqual(a.pid, b.pid);
});

test("each gateway answers a chat with its own token, the reply coming from the fake provider", {
  skip,
}, async () => {
  for (const name of ["alice", "bob"]) {
    const { url, token } = created[name]!.gateway;
    const r = await chat(url, token, `hello from ${name}`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.content, `fake-llm: hello from ${name}`);
  }
  const seen = provider.requests.map((q) => q.lastUserMessage);
  assert.ok(seen.includes("hello from alice") && seen.includes("hello from bob"));
  assert.ok(provider.requests.every((q) => q.authorization === `Bearer ${OPERATOR_KEY}`));
  // The provider on the host's loopback was reached through the egress proxy, per tenant even
  // in a shared pool, and each tenant reads its own egress through the API.
  for (const name of ["alice", "bob"]) {
    const res = await fetch(`${platform!.apiUrl}/v1/tenants/${name}/egress`, {
      headers: { authorization: `Bearer ${created[name]!.apiToken}` },
    });
    assert.equal(res.status, 200);
    const view = (await res.json()) as EgressView;
    assert.equal(view.mode, "per tenant");
    assert.ok(view.counters.allowed >= 1 && view.counters.bytesDown > 0, JSON.stringify(view.counters));
    assert.ok(
      view.log.some((e) => e.host === "llm.clawkeep.internal" && e.verdict === "allow" && e.bytesDown > 0),
      `${name}'s provider calls are in its egress log: ${JSON.stringify(view.log.slice(-3))}`,
    );
  }
  const other = await fetch(`${platform!.apiUrl}/v1/tenants/bob/egress`, {
    headers: { authorization: `Bearer ${created.alice!.apiToken}` },
  });
  assert.equal(other.status, 404, "alice cannot read bob's egress");
});

/** A tenant's LLM relay key, as its gateway got it (unsealed from the store). */
async function virtualKeyOf(p: Platform, name: string): Promise<string> {
  const t = p.store.get(name)!;
  const sealed = p.store.getSecret(t.id, VIRTUAL_KEY_PURPOSE);
  assert.ok(sealed, `${name} has a virtual key`);
  return (await unsealSecret(p.kms as TenantKeyService, t.id, VIRTUAL_KEY_PURPOSE, sealed)).reveal();
}

/** Where the operator's key shows up among a tenant's processes (environment, command line) and files. */
async function operatorKeyIn(uid: number, dir: string): Promise<string[]> {
  const needle = Buffer.from(OPERATOR_KEY);
  const found: string[] = [];
  const pids = await pidsOfUid(uid);
  assert.ok(pids.length > 0, `uid ${uid} runs processes to scan`);
  for (const pid of pids) {
    for (const what of ["environ", "cmdline"]) {
      const buf = await readFile(`/proc/${pid}/${what}`).catch(() => Buffer.alloc(0));
      if (buf.includes(needle)) found.push(`/proc/${pid}/${what}`);
    }
  }
  // The tenant's whole directory (config, state, workspace) and the pool's shared /tmp, as its
  // gateway sees them (its mount namespace).
  const gateway = pids[0]!;
  for (const root of [dir, `/proc/${gateway}/root/tmp`, `/proc/${gateway}/root/dev/shm`])
    for (const f of await filesUnder(root)) if ((await scanFile(f, { key: needle })).length) found.push(f);
  return found;
}

test("the operator's provider key is in no tenant process, config, file or the pool's /tmp; each gateway's only provider key is its own virtual key", {
  skip,
}, async () => {
  const p = platform!;
  for (const name of ["alice", "bob"]) {
    const uid = await hostUid(p, name);
    assert.deepEqual(await operatorKeyIn(uid, await hostDir(p, name)), [], `${name} holds no operator key`);
    const key = await virtualKeyOf(p, name);
    assert.match(key, /^ckv_/);
    const envs = await Promise.all(
      (await pidsOfUid(uid)).map((pid) => readFile(`/proc/${pid}/environ`, "latin1").catch(() => "")),
    );
    assert.ok(
      envs.some((e) => e.includes(`CLAWKEEP_LLM_API_KEY=${key}`)),
      `${name}'s gateway holds its own virtual key`,
    );
  }
  // Controls: the same scan finds the key planted in a file of alice's and in the environment of
  // a process of alice's uid.
  const uid = await hostUid(p, "alice");
  const dir = await hostDir(p, "alice");
  const planted = join(dir, "planted-operator-key");
  await writeFile(planted, `x${OPERATOR_KEY}x`);
  const sleeper = spawn("/bin/sleep", ["30"], { uid, gid: uid, env: { K: OPERATOR_KEY }, stdio: "ignore" });
  try {
    await new Promise((r) => setTimeout(r, 200));
    const found = await operatorKeyIn(uid, dir);
    assert.ok(found.includes(planted), `the planted file is found: ${found.join(", ")}`);
    assert.ok(
      found.includes(`/proc/${sleeper.pid}/environ`),
      `the planted environment is found: ${found.join(", ")}`,
    );
  } finally {
    sleeper.kill("SIGKILL");
    await rm(planted, { force: true });
  }
});

/** An HTTP request to the relay from inside a Starter tenant (its own uid and address), through the egress proxy as the gateway goes. */
async function relayFrom(name: string, key: string): Promise<{ status: number; body: string }> {
  const proxy = `http://${settings.tenantNetPrefix}.0.1:${settings.egress.port}`;
  const pools = (platform!.driver as TieredDriver).driverFor("starter") as PoolDriver;
  const out = await pools.exec(name, [
    "/usr/bin/curl",
    "-sS",
    "-x",
    proxy,
    "-H",
    `authorization: Bearer ${key}`,
    "-w",
    "\n%{http_code}",
    `http://llm.clawkeep.internal:${settings.relay.port}/v1/models`,
  ]);
  const lines = String(out).trimEnd().split("\n");
  return { status: Number(lines.at(-1)), body: lines.slice(0, -1).join("\n") };
}

test("the relay: alice's virtual key is served from alice's address and refused from bob's; a wrong key is refused; usage is counted per tenant", {
  skip,
}, async () => {
  const p = platform!;
  const aliceKey = await virtualKeyOf(p, "alice");
  const own = await relayFrom("alice", aliceKey);
  assert.equal(own.status, 200, own.body);
  assert.match(own.body, new RegExp(provider.model));
  const stolen = await relayFrom("bob", aliceKey);
  assert.equal(stolen.status, 403, stolen.body);
  const wrong = await relayFrom("bob", `ckv_${"A".repeat(43)}`);
  assert.equal(wrong.status, 401, wrong.body);
  // The chats of the test above were counted for each tenant, from the provider's own usage.
  for (const name of ["alice", "bob"]) {
    const deadline = Date.now() + 20_000;
    let today: { requests: number; tokens: number } | undefined;
    while (Date.now() < deadline) {
      const res = await fetch(`${p.apiUrl}/v1/tenants/${name}/usage`, {
        headers: { authorization: `Bearer ${created[name]!.apiToken}` },
      });
      assert.equal(res.status, 200);
      today = ((await res.json()) as { today: { requests: number; tokens: number } }).today;
      if (today.requests > 0) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.ok(
      today && today.requests > 0 && today.tokens > 0,
      `${name}'s chats are counted: ${JSON.stringify(today)}`,
    );
  }
  const other = await fetch(`${p.apiUrl}/v1/tenants/bob/usage`, {
    headers: { authorization: `Bearer ${created.alice!.apiToken}` },
  });
  assert.equal(other.status, 404, "alice cannot read bob's usage");
  // The refused key is a security event of the tenant it belongs to, once the relay was drained.
  const wrongSource = () =>
    ["alice", "bob"].some((n) =>
      p.store.events(p.store.get(n)!.id).some((e) => e.type === "llm_wrong_source"),
    );
  const until = Date.now() + 20_000;
  while (!wrongSource() && Date.now() < until) await new Promise((r) => setTimeout(r, 500));
  assert.ok(wrongSource(), "the refused key is recorded as an llm_wrong_source event");
});

test("the relay killed: it is started again at the same address and the next chat works, no gateway restarted", {
  skip,
}, async () => {
  const p = platform!;
  const before = p.relay.pid;
  assert.ok(before);
  const gateways = await Promise.all(["alice", "bob"].map(async (n) => (await p.driver.status(n)).pid));
  process.kill(before, "SIGKILL");
  const deadline = Date.now() + 60_000;
  while (
    Date.now() < deadline &&
    (p.relay.pid === before || p.relay.pid === undefined || p.relay.state !== "running")
  )
    await new Promise((r) => setTimeout(r, 200));
  assert.notEqual(p.relay.pid, before, "a new relay process");
  const r = await chat(created.alice!.gateway.url, created.alice!.gateway.token, "after the relay came back");
  assert.equal(r.status, 200, r.text);
  assert.equal(r.content, "fake-llm: after the relay came back");
  assert.deepEqual(
    await Promise.all(["alice", "bob"].map(async (n) => (await p.driver.status(n)).pid)),
    gateways,
  );
});

test("bring your own key: alice's chats reach her own provider with her key, never the operator's; removing it returns her to the platform's", {
  skip,
}, async () => {
  const p = platform!;
  const put = (body: unknown, token = created.alice!.apiToken) =>
    fetch(`${p.apiUrl}/v1/tenants/alice/llm`, {
      method: "PUT",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify(body),
    });
  // A base URL the operator does not allow is refused, naming it; bob cannot set alice's.
  const refused = await put({ baseUrl: "http://198.51.100.7/v1", apiKey: "x" });
  assert.equal(refused.status, 400, await refused.clone().text());
  assert.match(await refused.text(), /198\.51\.100\.7/);
  assert.equal(
    (await put({ baseUrl: ownProvider.url, apiKey: TENANT_KEY }, created.bob!.apiToken)).status,
    404,
  );
  const set = await put({ baseUrl: ownProvider.url, apiKey: TENANT_KEY });
  assert.equal(set.status, 200, await set.clone().text());
  assert.doesNotMatch(await set.text(), new RegExp(TENANT_KEY), "the key is never shown back");

  const operatorSeen = provider.requests.length;
  const r = await chat(created.alice!.gateway.url, created.alice!.gateway.token, "on my own key");
  assert.equal(r.status, 200, r.text);
  assert.equal(r.content, "own-llm: on my own key");
  assert.ok(
    ownProvider.requests.length > 0 &&
      ownProvider.requests.every((q) => q.authorization === `Bearer ${TENANT_KEY}`),
  );
  assert.equal(provider.requests.length, operatorSeen, "the operator's provider saw nothing of it");
  // bob is untouched: still the platform's provider.
  const b = await chat(created.bob!.gateway.url, created.bob!.gateway.token, "bob as before");
  assert.equal(b.content, "fake-llm: bob as before");
  // The tenant's key is in none of its processes or files either.
  const uid = await hostUid(p, "alice");
  const envs = await Promise.all(
    (await pidsOfUid(uid)).map((pid) => readFile(`/proc/${pid}/environ`).catch(() => Buffer.alloc(0))),
  );
  assert.ok(
    !envs.some((e) => e.includes(Buffer.from(TENANT_KEY))),
    "alice's own key never enters her gateway",
  );

  const del = await fetch(`${p.apiUrl}/v1/tenants/alice/llm`, {
    method: "DELETE",
    headers: { authorization: `Bearer ${created.alice!.apiToken}` },
  });
  assert.ok(del.status === 200 || del.status === 204, await del.text());
  const back = await chat(created.alice!.gateway.url, created.alice!.gateway.token, "back on the platform");
  assert.equal(back.content, "fake-llm: back on the platform");
});

test("a Premium tenant chats through the relay too, and its container, volume and /tmp hold no operator key", {
  skip,
}, async () => {
  const p = platform!;
  const res = await fetch(`${p.apiUrl}/v1/tenants`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: "carol", tier: "premium" }),
  });
  assert.equal(res.status, 201, await res.clone().text());
  const carol = (await res.json()) as (typeof created)[string];
  try {
    await waitRunning(p, "carol");
    const r = await chat(carol.gateway.url, carol.gateway.token, "hello from carol");
    assert.equal(r.status, 200, r.text);
    assert.equal(r.content, "fake-llm: hello from carol");
    const range = String((await p.driver.status("carol")).details.uidRange);
    const uid = Number(range.split("-")[0]) + 1000;
    hostUids.add(uid);
    assert.deepEqual(await operatorKeyIn(uid, join(home, "volumes", "mnt", "carol", "data")), []);
    const envs = await Promise.all(
      (await pidsOfUid(uid)).map((pid) => readFile(`/proc/${pid}/environ`, "latin1").catch(() => "")),
    );
    const key = await virtualKeyOf(p, "carol");
    assert.ok(
      envs.some((e) => e.includes(`CLAWKEEP_LLM_API_KEY=${key}`)),
      "carol's gateway holds its own virtual key",
    );
  } finally {
    await fetch(`${p.apiUrl}/v1/tenants/carol`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${carol.apiToken}` },
    });
    const until = Date.now() + 120_000;
    while (p.store.get("carol") && Date.now() < until) await new Promise((r) => setTimeout(r, 500));
  }
  assert.equal(p.store.get("carol"), undefined, "carol is gone again");
});

test("a tenant's own egress allowlist reaches the proxy at once, for that tenant only", {
  skip,
}, async () => {
  const pools = (platform!.driver as TieredDriver).driverFor("starter") as PoolDriver;
  const proxy = `http://198.19.0.1:${settings.egress.port}`;
  // From inside the pool as each tenant (its uid, so its own source address), through the proxy.
  const tryHost = async (name: string) => {
    let failed = "";
    await pools
      .exec(name, [
        "/usr/bin/curl",
        "-s",
        "-o",
        "/dev/null",
        "--max-time",
        "10",
        "-x",
        proxy,
        "http://allowed.test/",
      ])
      .catch((err: unknown) => {
        // curl exits non-zero where the proxy refuses to connect onward; its log says why.
        failed = (err as Error).message;
      });
    const view = await egressOf(name);
    const reason = view.log.filter((e) => e.host === "allowed.test").at(-1)?.reason;
    if (!reason)
      console.error(
        `no egress log entry for ${name}'s request (curl: ${failed || "ok"}); last entries: ${JSON.stringify(view.log.slice(-3))}`,
      );
    return reason;
  };
  // Control: not on anyone's list, so the proxy refuses it before resolving it.
  assert.equal(await tryHost("alice"), "not-allowlisted");
  const put = await fetch(`${platform!.apiUrl}/v1/tenants/alice/egress/allow`, {
    method: "PUT",
    headers: { authorization: `Bearer ${created.alice!.apiToken}`, "content-type": "application/json" },
    body: JSON.stringify({ hosts: ["ALLOWED.test"] }),
  });
  assert.equal(put.status, 200, await put.clone().text());
  assert.deepEqual(((await put.json()) as { own: string[] }).own, ["allowed.test"]);
  // Now it passes the allowlist for alice, and is stopped only by the address check (the test
  // pins the name to a documentation address: no DNS query, no connection leaves the host)...
  assert.equal(await tryHost("alice"), "forbidden-address");
  // ...and still not for bob, her neighbour in the same pool.
  assert.equal(await tryHost("bob"), "not-allowlisted");
});

test("alice's token is refused by bob's gateway", { skip }, async () => {
  const r = await chat(created.bob!.gateway.url, created.alice!.gateway.token, "let me in");
  assert.equal(r.status, 401);
  // Control: bob's own token passes on the same gateway.
  assert.equal((await chat(created.bob!.gateway.url, created.bob!.gateway.token, "me")).status, 200);
});

test("through the edge: TLS 1.3, a chat and a WebSocket upgrade reach the real gateway, an injection probe is blocked", {
  skip,
}, async () => {
  const edge = platform!.edge!;
  assert.ok(edge, "the edge runs");
  const ca = await readFile(edge.caFile!, "utf8");
  const url = new URL(created.bob!.gateway.publicUrl!);
  // Wait until the edge routes bob (routes follow tenant state changes).
  const deadline = Date.now() + 30_000;
  let r = await viaEdge(url, ca, "GET", "/healthz");
  while (r.status !== 200 && Date.now() < deadline) {
    await new Promise((res) => setTimeout(res, 500));
    r = await viaEdge(url, ca, "GET", "/healthz");
  }
  assert.equal(r.status, 200, r.body);
  assert.equal(r.protocol, "TLSv1.3");
  const body = JSON.stringify({
    model: "openclaw",
    messages: [{ role: "user", content: "hello through the edge" }],
  });
  const c = await viaEdge(url, ca, "POST", "/v1/chat/completions", body, {
    authorization: `Bearer ${created.bob!.gateway.token}`,
  });
  assert.equal(c.status, 200, c.body);
  assert.match(c.body, /fake-llm: hello through the edge/);
  const ws = await viaEdge(url, ca, "GET", "/", undefined, {
    connection: "Upgrade",
    upgrade: "websocket",
    "sec-websocket-version": "13",
    "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
    origin: url.origin,
  });
  assert.equal(ws.status, 101, `WebSocket upgrade: ${ws.status} ${ws.body}`);
  const probe = await viaEdge(url, ca, "GET", "/?q=1%27%20OR%201%3D1--");
  assert.equal(probe.status, 403);
  // Control: the same probe straight to the gateway is not blocked by anything.
  assert.notEqual((await fetch(`${created.bob!.gateway.url}/?q=1%27%20OR%201%3D1--`)).status, 403);
});

test("tenant directories are 0700 under each tenant's own uid, each encrypted with its own key; the config holds no secret", {
  skip,
}, async () => {
  const { stat, readFile } = await import("node:fs/promises");
  const dirA = await hostDir(platform!, "alice");
  const dirB = await hostDir(platform!, "bob");
  dirs.alice = dirA;
  const a = await stat(dirA);
  const b = await stat(dirB);
  assert.equal(a.mode & 0o777, 0o700);
  assert.equal(a.uid, await hostUid(platform!, "alice"));
  assert.equal(b.uid, await hostUid(platform!, "bob"));
  assert.notEqual(a.uid, b.uid);
  const { LocalVolumes } = await import("../src/runtime/linux/volume/volume.ts");
  const v = new LocalVolumes({
    imagesRoot: join(home, "volumes", "images"),
    mountsRoot: join(home, "volumes", "mnt"),
  });
  const mnt = join(dirA, "..", "..");
  const pa = await v.policyOf({ mountpoint: mnt, dir: dirA });
  const pb = await v.policyOf({ mountpoint: mnt, dir: dirB });
  assert.ok(pa && pb, "both directories carry an fscrypt policy");
  assert.notEqual(pa.keyIdentifier, pb.keyIdentifier, "each tenant has its own key");
  const cfg = await readFile(join(dirA, "state", "openclaw.json"), "utf8");
  assert.ok(!cfg.includes(created.alice!.gateway.token));
  assert.ok(!cfg.includes("provider-key"));
});

test("kill -9 of a gateway: it is restarted and answers again", { skip }, async () => {
  const uid = await hostUid(platform!, "alice");
  const bobBefore = (await platform!.driver.status("bob")).pid;
  const [pid] = await gatewayProcesses(uid);
  assert.ok(pid, "alice's gateway runs");
  process.kill(pid, "SIGKILL");
  const deadline = Date.now() + 240_000;
  while (Date.now() < deadline) {
    const now = await gatewayProcesses(uid);
    if (now.length === 1 && now[0] !== pid && platform!.store.get("alice")?.actual === "running") break;
    await new Promise((r) => setTimeout(r, 500));
  }
  await waitRunning(platform!, "alice");
  const r = await chat(created.alice!.gateway.url, created.alice!.gateway.token, "back again");
  assert.equal(r.status, 200, r.text);
  assert.equal(r.content, "fake-llm: back again");
  const events = platform!.store.events(platform!.store.get("alice")!.id).map((e) => e.type);
  assert.ok(events.includes("crashed"), events.join(","));
  assert.equal(
    (await platform!.driver.status("bob")).pid,
    bobBefore,
    "bob, her neighbour, was not restarted",
  );
});

test("a restarted control plane adopts both gateways: same processes, one each", { skip }, async () => {
  const uids = await Promise.all(["alice", "bob"].map((n) => hostUid(platform!, n)));
  const before = await Promise.all(uids.map(gatewayProcesses));
  assert.deepEqual(
    before.map((p) => p.length),
    [1, 1],
  );
  await platform!.close();
  platform = undefined;
  platform = await startPlatform(settings, log);
  await platform.reconciler.idle();
  await new Promise((r) => setTimeout(r, 1500));
  await platform.reconciler.idle();
  const afterRestart = await Promise.all(uids.map(gatewayProcesses));
  assert.deepEqual(afterRestart, before, "the very same gateway processes, no duplicates");
  for (const name of ["alice", "bob"]) {
    assert.equal(platform.store.get(name)!.actual, "running");
    const r = await chat(created[name]!.gateway.url, created[name]!.gateway.token, `still ${name}`);
    assert.equal(r.status, 200, r.text);
  }
});

test("the operator moves bob to another pool: same URL and token, his data went with him, alice untouched", {
  skip,
}, async () => {
  const before = await platform!.driver.status("bob");
  const alicePid = (await platform!.driver.status("alice")).pid;
  const res = await adminCall(platform!, "POST", "/v1/pools/moves", { tenant: "bob" });
  assert.equal(res.status, 200, res.body);
  const moved = JSON.parse(res.body) as { tenant: string; pool: string };
  assert.notEqual(moved.pool, before.details.pool, "a pool of its own: pool-0 has no room to spare");
  await waitRunning(platform!, "bob");
  const after = await platform!.driver.status("bob");
  assert.equal(after.details.pool, moved.pool);
  assert.equal(after.url, before.url, "the URL does not change");
  assert.notEqual(after.details.hostUid, before.details.hostUid);
  await hostUid(platform!, "bob");
  const r = await chat(created.bob!.gateway.url, created.bob!.gateway.token, "moved in");
  assert.equal(r.status, 200, r.text);
  assert.equal(r.content, "fake-llm: moved in");
  // His earlier conversation is on the new pool's volume, under his new uid.
  const found = await execFile(["grep", "-rl", "hello from bob", await hostDir(platform!, "bob")]).catch(
    () => "",
  );
  assert.ok(found.length > 0, "bob's earlier chat moved with him");
  const pools = JSON.parse((await adminCall(platform!, "GET", "/v1/pools")).body) as {
    pools: Array<{ id: string; tenants: string[] }>;
  };
  assert.deepEqual(
    pools.pools.map((p) => [p.id, p.tenants]),
    [
      [before.details.pool, ["alice"]],
      [moved.pool, ["bob"]],
    ],
  );
  assert.equal((await platform!.driver.status("alice")).pid, alicePid, "alice was not restarted");
});

test("delete shreds: the process and directory are gone, the key service refuses the key, and a copy of the volume taken before stays unreadable", {
  skip,
}, async () => {
  const t = platform!.store.get("alice")!;
  const uid = await hostUid(platform!, "alice");
  const kms = platform!.kms as TenantKeyService;
  const aliceKey = await kms.getVolumeKey(t.id);
  const pool = join(
    home,
    "volumes",
    "images",
    `starter-${(await platform!.driver.status("alice")).details.pool}.img`,
  );
  const copy = join(home, "pool-copy.img");
  await execFile(["cp", "--sparse=always", pool, copy]);

  const res = await fetch(`${platform!.apiUrl}/v1/tenants/alice`, {
    method: "DELETE",
    headers: { authorization: `Bearer ${created.alice!.apiToken}` },
  });
  assert.equal(res.status, 202);
  const deadline = Date.now() + 60_000;
  while (platform!.store.get("alice") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  assert.equal(platform!.store.get("alice"), undefined);
  assert.deepEqual(await pidsOfUid(uid), []);
  assert.ok(dirs.alice);
  assert.equal(existsSync(dirs.alice), false);
  // Nothing the platform holds can unwrap alice's key any more.
  await assert.rejects(kms.getVolumeKey(t.id), /destroyed|unknown/);

  // The copy holds alice's conversation only as ciphertext...
  const needles = { key: aliceKey, chat: Buffer.from("hello from alice") };
  assert.deepEqual(await scanFile(copy, needles), []);
  // ...and (control) the key the platform no longer has would still open it: the key is all that protects it.
  const { LocalVolumes } = await import("../src/runtime/linux/volume/volume.ts");
  const v = new LocalVolumes({ imagesRoot: home, mountsRoot: join(home, "copy-mnt") });
  const mnt = join(home, "copy-mnt", "m");
  await v.mountVolume({ image: copy, mountpoint: mnt });
  try {
    const dir = join(mnt, "tenants", "alice");
    await v.unlockDir({ mountpoint: mnt, dir, key: Buffer.from(aliceKey) });
    const found = await execFile(["grep", "-rl", "hello from alice", dir]).catch(() => "");
    assert.ok(found.length > 0, "with the destroyed key the copy decrypts: the data was there");
  } finally {
    await v.deleteVolume({ image: copy, mountpoint: mnt }).catch(() => {});
    aliceKey.fill(0);
  }
  // bob is untouched.
  assert.equal((await chat(created.bob!.gateway.url, created.bob!.gateway.token, "still here")).status, 200);
});

test("key material and tenant plaintext are nowhere on disk: images, database, key store, logs, runtime", {
  skip,
}, async () => {
  const bob = platform!.store.get("bob")!;
  const kms = platform!.kms as TenantKeyService;
  const key = await kms.getVolumeKey(bob.id);
  platform!.tenants.setDesired({ kind: "operator" }, "bob", "suspend");
  const deadline = Date.now() + 60_000;
  while (platform!.store.get("bob")?.actual !== "suspended" && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 200));
  assert.equal(platform!.store.get("bob")?.actual, "suspended");
  const needles: Record<string, Buffer> = {
    "bob volume key": key,
    "bob volume key (hex)": Buffer.from(key.toString("hex")),
    "bob gateway token": Buffer.from(created.bob!.gateway.token),
    "bob API token": Buffer.from(created.bob!.apiToken),
    "bob chat": Buffer.from("hello from bob"),
  };
  const hits: string[] = [];
  for (const f of await filesUnder(home))
    for (const n of await scanFile(f, needles)) hits.push(`${n} in ${f}`);
  const fresh = await execFile(["find", settings.runtimeDir, "-newer", join(home, "control"), "-type", "f"]);
  assert.equal(fresh.trim(), "", "nothing written into the runtime directory");
  assert.deepEqual(hits, []);
  // Control: the same scan finds plaintext written to an unencrypted file.
  await writeFile(join(home, "control-plain.txt"), "xx hello from bob xx");
  assert.deepEqual(await scanFile(join(home, "control-plain.txt"), needles), ["bob chat"]);
  key.fill(0);
});

test("`clawkeep teardown` refuses while the control plane runs; once it is stopped, takes everything down and keeps the data", {
  skip,
}, async () => {
  const cli = (args: string[]) =>
    execFile(["bin/clawkeep", ...args], { env: env as Record<string, string> }).then(
      (out) => ({ code: 0, out }),
      (err: ExecError) => ({ code: err.exitCode ?? -1, out: `${err.stdout}${err.stderr}` }),
    );
  const refused = await cli(["teardown", "--json"]);
  assert.equal(refused.code, 1);
  assert.match(refused.out, /"code":"conflict".*control plane is running/);
  assert.ok((await platform!.driver.list()).length > 0, "control: nothing was touched");

  // The control plane exits the ordinary way: gateways, pools and the edge keep running.
  const pool = String((await platform!.driver.status("bob")).details.pool);
  await platform!.close();
  platform = undefined;
  const runc = ["runc", "--root", join(home, "run", "pool-secrets", "runc")];
  assert.match(
    await execFile([...runc, "list", "-q"]),
    /ckpool-/,
    "control: the pool outlives the control plane",
  );
  assert.ok((await execFile(["ip", "link", "show"])).includes("ckbr0"));
  const poolNetns = `ck-${settings.maxSlots + Number(pool.slice("pool-".length))}`;
  assert.match(await execFile(["ip", "netns", "list"]), new RegExp(`^${poolNetns}\\b`, "m"));

  const done = await cli(["teardown", "--json"]);
  assert.equal(done.code, 0, done.out);
  tornDown = true;
  assert.equal((await execFile([...runc, "list", "-q"]).catch(() => "")).trim(), "", "no pool container");
  assert.ok(!(await execFile(["ip", "link", "show"])).includes("ckbr0"), "no bridge");
  assert.doesNotMatch(
    await execFile(["ip", "netns", "list"]),
    new RegExp(`^${poolNetns}\\b`, "m"),
    "the pool's network namespace is gone",
  );
  const mounts = await readFile("/proc/self/mountinfo", "utf8");
  assert.ok(!mounts.includes(home), "nothing mounted under the platform's home");
  assert.ok(!(await execFile(["nft", "list", "tables"])).includes("clawkeep\n"), "no clawkeep ruleset");
  // The data stays: bob's record and his pool's (encrypted, unmounted) volume.
  assert.ok(existsSync(join(home, "pools", "tenants", "bob.json")));
  assert.ok(existsSync(join(home, "volumes", "images", `starter-${pool}.img`)));
});

/** One call to the operator API on its unix socket. */
function adminCall(
  p: Platform,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        socketPath: p.adminSocket,
        method,
        path,
        headers: body === undefined ? {} : { "content-type": "application/json" },
        timeout: 240_000,
      },
      (res) => {
        let data = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          data += d;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: data }));
      },
    );
    req.on("error", reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** One request through the edge, trusting its CA, with the tenant's host name sent as SNI and Host. */
function viaEdge(
  url: URL,
  ca: string,
  method: string,
  path: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string; protocol: string | null }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: EDGE_HOST,
        port: Number(url.port || 443),
        servername: url.hostname,
        headers: { host: url.host, ...(body ? { "content-type": "application/json" } : {}), ...headers },
        method,
        path,
        ca,
        timeout: 120_000,
      },
      (res) => {
        const protocol = (res.socket as import("node:tls").TLSSocket | null)?.getProtocol?.() ?? null;
        let data = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          data += d;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: data, protocol }));
      },
    );
    req.on("upgrade", (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, body: "", protocol: null });
    });
    req.on("error", reject);
    req.end(body);
  });
}
