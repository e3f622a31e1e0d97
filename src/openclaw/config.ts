/**
 * Renders one tenant's OpenClaw configuration and environment. Pure: paths, ports and provider
 * come in, data goes out; the driver writes it. The file holds no secrets: the gateway token and
 * provider key are `${VAR}` references that OpenClaw fills from the environment the driver passes
 * at start (from memory).
 */
export const GATEWAY_TOKEN_ENV = "OPENCLAW_GATEWAY_TOKEN";
export const LLM_KEY_ENV = "CLAWKEEP_LLM_API_KEY";
export const PROVIDER_ID = "clawkeep";

export interface LlmProvider {
  /** OpenAI-compatible base URL ending in /v1. */
  baseUrl: string;
  model: string;
}

export interface InstancePaths {
  /** OPENCLAW_STATE_DIR: everything OpenClaw keeps. */
  stateDir: string;
  home: string;
  tmpDir: string;
  workspaceDir: string;
  configPath: string;
  logFile: string;
}

export interface OpenClawConfigInput {
  port: number;
  /** "loopback" for host processes; "lan" inside a network namespace of the tenant's own. */
  bind: "loopback" | "lan";
  paths: InstancePaths;
  llm: LlmProvider;
  /**
   * The egress proxy every outbound call must go through (OpenClaw's managed proxy mode covers
   * fetch, node:http, WebSocket and CONNECT; HTTPS_PROXY alone does not). Unset: no proxy.
   */
  proxyUrl?: string;
  /** Browser origins allowed to open the Control UI's WebSocket (the edge's host name). */
  allowedOrigins?: string[];
  /**
   * Source addresses of the edge, whose X-Forwarded-For (which the edge overwrites) OpenClaw
   * trusts for client attribution; without it OpenClaw refuses proxied requests.
   */
  trustedProxies?: string[];
}

export function renderOpenClawConfig(input: OpenClawConfigInput): Record<string, unknown> {
  return {
    gateway: {
      mode: "local",
      port: input.port,
      bind: input.bind,
      auth: { mode: "token", token: `\${${GATEWAY_TOKEN_ENV}}` },
      ...(input.trustedProxies?.length ? { trustedProxies: input.trustedProxies } : {}),
      controlUi: {
        enabled: true,
        ...(input.allowedOrigins?.length ? { allowedOrigins: input.allowedOrigins } : {}),
      },
      http: { endpoints: { chatCompletions: { enabled: true } } },
    },
    update: { checkOnStart: false },
    ...(input.proxyUrl ? { proxy: { enabled: true, proxyUrl: input.proxyUrl } } : {}),
    logging: { file: input.paths.logFile },
    models: {
      catalogRefresh: { enabled: false },
      providers: {
        [PROVIDER_ID]: {
          baseUrl: input.llm.baseUrl,
          apiKey: `\${${LLM_KEY_ENV}}`,
          api: "openai-completions",
          models: [{ id: input.llm.model, name: input.llm.model }],
        },
      },
    },
    agents: {
      defaults: {
        model: { primary: `${PROVIDER_ID}/${input.llm.model}` },
        workspace: input.paths.workspaceDir,
      },
    },
  };
}

export function renderOpenClawConfigFile(input: OpenClawConfigInput): string {
  return `${JSON.stringify(renderOpenClawConfig(input), null, 2)}\n`;
}

/**
 * The gateway's whole environment (nothing is inherited from the control plane). Every path
 * points into the tenant's own directory, so nothing of one tenant lands in a shared place.
 */
export function renderGatewayEnv(input: {
  port: number;
  paths: InstancePaths;
  nodeBinDir: string;
  gatewayToken: string;
  llmApiKey: string;
  /**
   * The egress proxy, for the libraries that read the conventional variables (OpenClaw's own
   * managed proxy mode comes from its config's proxyUrl). Unset: none.
   */
  proxyUrl?: string | null;
}): Record<string, string> {
  const p = input.proxyUrl;
  return {
    ...(p
      ? { HTTPS_PROXY: p, HTTP_PROXY: p, https_proxy: p, http_proxy: p, NO_PROXY: "localhost,127.0.0.1" }
      : {}),
    PATH: `${input.nodeBinDir}:/usr/local/bin:/usr/bin:/bin`,
    HOME: input.paths.home,
    TMPDIR: input.paths.tmpDir,
    LANG: "C.UTF-8",
    OPENCLAW_STATE_DIR: input.paths.stateDir,
    OPENCLAW_CONFIG_PATH: input.paths.configPath,
    OPENCLAW_WORKSPACE_DIR: input.paths.workspaceDir,
    OPENCLAW_GATEWAY_PORT: String(input.port),
    OPENCLAW_CONFIG_READONLY: "1",
    OPENCLAW_NO_AUTO_UPDATE: "1",
    OPENCLAW_DISABLE_BONJOUR: "1",
    DO_NOT_TRACK: "1",
    NODE_ENV: "production",
    MALLOC_ARENA_MAX: "2",
    [GATEWAY_TOKEN_ENV]: input.gatewayToken,
    [LLM_KEY_ENV]: input.llmApiKey,
  };
}

export function gatewayArgs(entry: string, port: number): string[] {
  return [entry, "gateway", "run", "--port", String(port)];
}
