import assert from "node:assert/strict";
import { test } from "node:test";
import { gatewayArgs, renderGatewayEnv, renderOpenClawConfig, renderOpenClawConfigFile } from "./config.ts";

const paths = {
  stateDir: "/t/alice/state",
  home: "/t/alice/home",
  tmpDir: "/t/alice/tmp",
  workspaceDir: "/t/alice/workspace",
  configPath: "/t/alice/state/openclaw.json",
  logFile: "/t/alice/state/logs/openclaw.log",
};
const llm = { baseUrl: "http://127.0.0.1:9/v1", model: "m1" };

test("config: local mode, token auth, port, chat endpoint on, no update check or catalog refresh", () => {
  const c = renderOpenClawConfig({ port: 20200, bind: "loopback", paths, llm }) as {
    gateway: Record<string, unknown> & { auth: { mode: string; token: string }; http: unknown };
    update: unknown;
    models: {
      catalogRefresh: unknown;
      providers: Record<string, { baseUrl: string; apiKey: string; api: string }>;
    };
    agents: { defaults: { model: { primary: string }; workspace: string } };
    logging: { file: string };
  };
  assert.equal(c.gateway.mode, "local");
  assert.equal(c.gateway.port, 20200);
  assert.equal(c.gateway.bind, "loopback");
  assert.equal(c.gateway.auth.mode, "token");
  assert.deepEqual(c.gateway.http, { endpoints: { chatCompletions: { enabled: true } } });
  assert.deepEqual(c.update, { checkOnStart: false });
  assert.deepEqual(c.models.catalogRefresh, { enabled: false });
  assert.equal(c.models.providers.clawkeep!.baseUrl, llm.baseUrl);
  assert.equal(c.models.providers.clawkeep!.api, "openai-completions");
  assert.equal(c.agents.defaults.model.primary, "clawkeep/m1");
  assert.equal(c.logging.file, paths.logFile);
  assert.equal(c.agents.defaults.workspace, paths.workspaceDir);
});

test("config file holds references to secrets, never their values", () => {
  const text = renderOpenClawConfigFile({ port: 1, bind: "loopback", paths, llm });
  assert.match(text, /"\$\{OPENCLAW_GATEWAY_TOKEN\}"/);
  assert.match(text, /"\$\{CLAWKEEP_LLM_API_KEY\}"/);
  const env = renderGatewayEnv({
    port: 1,
    paths,
    nodeBinDir: "/rt/bin",
    gatewayToken: "tok-SECRET",
    llmApiKey: "key-SECRET",
  });
  assert.ok(!text.includes("tok-SECRET") && !text.includes("key-SECRET"));
  assert.equal(env.OPENCLAW_GATEWAY_TOKEN, "tok-SECRET");
  assert.equal(env.CLAWKEEP_LLM_API_KEY, "key-SECRET");
});

test("environment points every writable path into the tenant's own directory", () => {
  const env = renderGatewayEnv({ port: 7, paths, nodeBinDir: "/rt/bin", gatewayToken: "t", llmApiKey: "k" });
  for (const k of [
    "HOME",
    "TMPDIR",
    "OPENCLAW_STATE_DIR",
    "OPENCLAW_CONFIG_PATH",
    "OPENCLAW_WORKSPACE_DIR",
  ]) {
    assert.ok(env[k]!.startsWith("/t/alice/"), `${k}=${env[k]}`);
  }
  assert.equal(env.OPENCLAW_CONFIG_READONLY, "1");
  assert.equal(env.OPENCLAW_NO_AUTO_UPDATE, "1");
  assert.ok(env.PATH!.startsWith("/rt/bin:"));
  assert.deepEqual(gatewayArgs("/rt/openclaw.mjs", 7), ["/rt/openclaw.mjs", "gateway", "run", "--port", "7"]);
});

test("an egress proxy, when given, is OpenClaw's managed proxy; none otherwise", () => {
  const withProxy = renderOpenClawConfig({
    port: 1,
    bind: "lan",
    paths,
    llm,
    proxyUrl: "http://198.19.0.1:3128",
  });
  assert.deepEqual(withProxy.proxy, { enabled: true, proxyUrl: "http://198.19.0.1:3128" });
  assert.equal(renderOpenClawConfig({ port: 1, bind: "lan", paths, llm }).proxy, undefined);
  // The conventional proxy variables go with it, for libraries that read only those.
  const base = { port: 7, paths, nodeBinDir: "/rt/bin", gatewayToken: "t", llmApiKey: "k" };
  const env = renderGatewayEnv({ ...base, proxyUrl: "http://198.19.0.1:3128" });
  for (const k of ["HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"])
    assert.equal(env[k], "http://198.19.0.1:3128", k);
  assert.equal(env.NO_PROXY, "localhost,127.0.0.1");
  for (const none of [undefined, null]) {
    const plain = renderGatewayEnv({ ...base, proxyUrl: none });
    assert.ok(!Object.keys(plain).some((k) => /proxy/i.test(k)), JSON.stringify(Object.keys(plain)));
  }
});
