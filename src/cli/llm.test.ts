import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { getRequestListener } from "@hono/node-server";
import { Command } from "commander";
import { OWN_KEY_PURPOSE, unsealSecret } from "../control/llm-keys.ts";
import { ClawkeepError } from "../core/errors.ts";
import type { FakeDriver } from "../runtime/fake/driver.ts";
import { type SocketServer, serveSocket } from "../service/socket-server.ts";
import { makeControlPlane } from "../testing/harness.ts";
import { output } from "./common.ts";
import { registerLlmCommands } from "./llm.ts";

// The operator API of an in-process control plane on a unix socket, and the CLI's commands against it.
const cp = makeControlPlane();
let tmp: string | undefined;
const dir = () => tmp ?? "";
let server: SocketServer;
let alice: string;
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), "ck-cli-llm-"));
  server = await serveSocket({
    service: "the operator API",
    socket: join(dir(), "admin.sock"),
    handler: getRequestListener(cp.adminApi.fetch),
    drainMs: 0,
  });
  alice = (await cp.tenants.create({ name: "alice", tier: "starter" })).tenant.id;
});
after(async () => {
  await server.close();
  await cp.reconciler.stop();
  await (cp.driver as FakeDriver).closeAll();
  await cp.kms.close();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

/** Runs `clawkeep <args>` in process; resolves with what it printed on stdout. */
async function cli(...args: string[]): Promise<string> {
  const program = new Command("clawkeep").option("--socket <path>").exitOverride();
  registerLlmCommands(program);
  let out = "";
  const write = output.write;
  output.write = (text) => {
    out += text;
  };
  try {
    await program.parseAsync(["node", "clawkeep", "--socket", join(dir(), "admin.sock"), ...args]);
  } finally {
    output.write = write;
  }
  return out;
}

test("llm set-key reads the key from a file, show never prints it, clear-key returns to the platform's", async () => {
  const keyFile = join(dir(), "key");
  await writeFile(keyFile, "sk-cli-own-key\n", { mode: 0o600 });
  const set = JSON.parse(
    await cli(
      "llm",
      "set-key",
      "alice",
      "--base-url",
      "https://api.openai.com/v1",
      "--api-key-file",
      keyFile,
      "--json",
    ),
  ) as { provider: string; own: { baseUrl: string } };
  assert.equal(set.provider, "own");
  const sealed = cp.store.getSecret(alice, OWN_KEY_PURPOSE);
  assert.ok(sealed);
  assert.equal((await unsealSecret(cp.kms, alice, OWN_KEY_PURPOSE, sealed)).reveal(), "sk-cli-own-key");
  const shown = await cli("llm", "show", "alice");
  assert.match(shown, /its own at https:\/\/api\.openai\.com\/v1/);
  assert.ok(!shown.includes("sk-cli-own-key"));
  assert.match(await cli("llm", "clear-key", "alice"), /provider: the platform's/);

  await writeFile(keyFile, "\n");
  await assert.rejects(
    cli("llm", "set-key", "alice", "--base-url", "https://api.openai.com/v1", "--api-key-file", keyFile),
    /is empty/,
  );
  await writeFile(keyFile, "sk-x\n");
  await assert.rejects(
    cli("llm", "set-key", "alice", "--base-url", "https://evil.example/v1", "--api-key-file", keyFile),
    (err: unknown) => err instanceof ClawkeepError && /evil\.example/.test(err.message),
  );
});

test("llm rotate-key and usage, for one tenant and for all (control: an unknown tenant is not_found)", async () => {
  const r = JSON.parse(await cli("llm", "rotate-key", "alice", "--json")) as {
    tenant: string;
    restarted: boolean;
  };
  assert.deepEqual(r, { tenant: "alice", restarted: false }, "not running: it gets the key at its start");
  cp.llmStore.addUsage([
    {
      tenantId: alice,
      day: new Date().toISOString().slice(0, 10),
      model: "m",
      inputTokens: 40,
      outputTokens: 2,
      requests: 3,
    },
  ]);
  const one = JSON.parse(await cli("usage", "alice", "--json")) as { today: { tokens: number } };
  assert.equal(one.today.tokens, 42);
  assert.match(await cli("usage", "alice"), /42 tokens in 3 requests/);
  const all = JSON.parse(await cli("usage", "--json")) as { tenants: Array<{ tenant: string }> };
  assert.deepEqual(
    all.tenants.map((t) => t.tenant),
    ["alice"],
  );
  assert.match(await cli("usage"), /^TENANT\s+PLAN/);
  await assert.rejects(
    cli("usage", "nobody"),
    (err: unknown) => err instanceof ClawkeepError && err.code === "not_found",
  );
});
