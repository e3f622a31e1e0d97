import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { bodyLimit } from "hono/body-limit";
import type { Logger } from "pino";
import { ClawkeepError, ERROR_CODES } from "../core/errors.ts";
import { TENANT_NAME_MAX, TENANT_NAME_RE, TIERS } from "../core/tenant.ts";
import { LOCAL_MODEL_STATES } from "../llm/model-server/status.ts";
import { MODEL_ID_RE } from "../llm/model-server/verify.ts";
import { type EgressAllowService, MAX_ALLOW_ENTRIES } from "./egress-allow.ts";
import { errorBody, sendError, validationError } from "./errors.ts";
import type { LlmService } from "./llm.ts";
import type { ModelService } from "./models.ts";
import type { PoolService } from "./pools.ts";
import type { Principal, TenantService } from "./tenants.ts";

/** The largest request body either API reads: every body they take is a small JSON document. */
export const MAX_BODY_BYTES = 64 * 1024;

/**
 * The HTTP API. One app definition, served twice: `public` on TCP for tenants (each call
 * authenticated by a tenant API token, sign-up open), and `admin` on a 0600 unix socket for
 * the operator (socket permissions are the authentication; extra routes: list, suspend, ...).
 */
export type ApiMode = "public" | "admin";

type Env = { Variables: { principal: Principal } };

const ErrorSchema = z
  .object({
    error: z.object({
      code: z.enum(Object.keys(ERROR_CODES) as [keyof typeof ERROR_CODES, ...(keyof typeof ERROR_CODES)[]]),
      message: z.string(),
      retryable: z.boolean(),
      details: z.record(z.string(), z.unknown()).optional(),
    }),
  })
  .openapi("Error");

const NameParam = z
  .string()
  .openapi({ param: { name: "name", in: "path" }, example: "alice", pattern: TENANT_NAME_RE.source });

const CreateTenant = z
  .object({
    name: z
      .string({ message: "tenant name is required" })
      .min(1, "tenant name is required")
      .max(TENANT_NAME_MAX, `at most ${TENANT_NAME_MAX} characters`)
      .regex(TENANT_NAME_RE, "not a DNS label: use lower-case letters, digits and inner hyphens")
      .openapi({ example: "alice" }),
    tier: z
      .enum(TIERS, { message: `unknown tier; use one of ${TIERS.join(", ")}` })
      .openapi({ example: "starter" }),
  })
  .strict()
  .openapi("CreateTenant");

const Tenant = z
  .object({
    id: z.string(),
    name: z.string(),
    tier: z.enum(TIERS),
    createdAt: z.string(),
    trial: z.object({
      subscription: z.enum(["trial", "active"]),
      endsAt: z.string(),
      expired: z.boolean(),
      daysLeft: z.number(),
    }),
    desired: z.string(),
    actual: z.string(),
    reason: z.string().nullable(),
    gatewayUrl: z.string(),
    publicUrl: z.string().nullable(),
    plan: z.object({
      memoryBytes: z.number(),
      cpus: z.number(),
      pids: z.number(),
      volumeBytes: z.number(),
      egress: z.boolean(),
      localModel: z.boolean(),
    }),
    isolation: z.string(),
  })
  .openapi("Tenant");

const CreatedTenant = z
  .object({
    tenant: Tenant,
    apiToken: z.string().openapi({ description: "API token for this tenant; shown once" }),
    gateway: z.object({
      url: z.string(),
      publicUrl: z.string().nullable().openapi({ description: "through the edge (TLS 1.3, WAF)" }),
      caFile: z.string().nullable().openapi({ description: "CA to trust for the edge's own certificate" }),
      token: z.string().openapi({ description: "the gateway's bearer token; shown once" }),
    }),
  })
  .openapi("CreatedTenant");

const Instance = z
  .object({
    tenant: z.string(),
    actual: z.string(),
    reason: z.string().nullable(),
    driver: z.string(),
    state: z.string(),
    url: z.string().nullable(),
    pid: z.number().nullable(),
    startedAt: z.string().nullable(),
    details: z.record(z.string(), z.union([z.string(), z.number()])),
    model: z
      .object({
        id: z.string().nullable(),
        state: z.enum(LOCAL_MODEL_STATES),
        message: z.string().nullable().openapi({ description: "why, when none, failed or stopped" }),
      })
      .nullable()
      .openapi({ description: "the model server inside the instance (Enterprise); null without one" }),
    startQueue: z.object({ running: z.number(), queued: z.number() }),
  })
  .openapi("Instance");

const ModelIdParam = z.string().openapi({
  param: { name: "id", in: "path" },
  example: "qwen2.5-0.5b-instruct",
  pattern: MODEL_ID_RE.source,
});

const RegisterModel = z
  .object({
    id: z
      .string({ message: "model id is required" })
      .regex(
        MODEL_ID_RE,
        "use 1-64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit",
      )
      .openapi({ example: "qwen2.5-0.5b-instruct" }),
    path: z
      .string({ message: "path is required" })
      .startsWith("/", "an absolute path of a GGUF file on the host")
      .openapi({ example: "/srv/models/qwen2.5-0.5b-instruct-q4_k_m.gguf" }),
    sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, "64 hex digits")
      .optional()
      .openapi({ description: "the file's SHA-256 as published; measured when omitted" }),
    size: z.number().int().nonnegative().optional().openapi({ description: "the file's size in bytes" }),
  })
  .strict()
  .openapi("RegisterModel");

const Model = z
  .object({
    id: z.string(),
    path: z.string(),
    size: z.number(),
    sha256: z.string(),
    registeredAt: z.string(),
    verifiedAt: z.string(),
    status: z.enum(["ready", "missing", "corrupt"]),
    reason: z.string().nullable(),
    defaultFor: z.array(z.enum(TIERS)),
    tenants: z.array(z.string()),
  })
  .openapi("Model");

const AssignModel = z
  .object({
    model: z
      .string()
      .regex(MODEL_ID_RE, "not a model id")
      .nullable()
      .openapi({ description: "a registered model's id; null clears the choice" }),
  })
  .strict()
  .openapi("AssignModel");

const TenantModel = z
  .object({
    tenant: z.string(),
    tier: z.enum(TIERS),
    model: z.string().nullable().openapi({ description: "the tenant's own choice" }),
    effective: z.string().nullable().openapi({ description: "its own choice, else its plan's default" }),
  })
  .openapi("TenantModel");

const Event = z
  .object({ id: z.number(), at: z.string(), type: z.string(), message: z.string() })
  .openapi("Event");
const Token = z
  .object({ id: z.string(), label: z.string(), createdAt: z.string(), lastUsedAt: z.string().nullable() })
  .openapi("ApiToken");
const CreateToken = z.object({ label: z.string().min(1).max(100).default("api token") }).strict();

const errors = {
  400: { description: "invalid request", content: { "application/json": { schema: ErrorSchema } } },
  401: {
    description: "missing or invalid API token",
    content: { "application/json": { schema: ErrorSchema } },
  },
  404: { description: "no such tenant", content: { "application/json": { schema: ErrorSchema } } },
} as const;

const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

/** A JSON request body of `schema`; with `required: false` a request may come without one. */
const jsonBody = <T extends z.ZodType>(schema: T, required = true) => ({
  required,
  content: { "application/json": { schema } },
});

/** `{name}` in the path: the tenant a route is about. */
const tenantParams = { params: z.object({ name: NameParam }) };

/**
 * What every route on one tenant that the tenant itself may call answers beside its own: 401 (no
 * valid API token) and 404 (no such tenant, or not the caller's).
 */
const tenantErrors = { 401: errors[401], 404: errors[404] } as const;

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function createApi(opts: {
  mode: ApiMode;
  tenants: TenantService;
  /** The model registry: its routes exist in admin mode only, and only when given. */
  models?: ModelService;
  /** The Starter pools: their routes exist in admin mode only, and only when given. */
  pools?: PoolService;
  /** Egress allowlist additions: a tenant's own (both APIs), every tenant's (admin only). */
  egressAllow?: EgressAllowService;
  /** LLM access: a tenant's usage, own provider and key rotation (both APIs), every tenant's usage (admin only). */
  llm?: LlmService;
  log?: Logger;
}) {
  const { mode, tenants } = opts;
  const app = new OpenAPIHono<Env>({
    defaultHook: (result, c) => {
      if (!result.success) return sendError(c, validationError(result.error.issues));
    },
  });

  app.onError((err, c) => {
    const res = sendError(c, err);
    if (res.status >= 500) opts.log?.error({ err, path: c.req.path }, "request failed");
    return res;
  });
  app.notFound((c) => c.json(errorBody("not_found", `no route for ${c.req.method} ${c.req.path}`), 404));

  // Every request body the APIs take is a small JSON document: a larger one is refused before it
  // is read (by its length), or as soon as it passes the limit (a body sent without one).
  app.use(
    "/v1/*",
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: (c) =>
        sendError(
          c,
          new ClawkeepError(
            "payload_too_large",
            `request bodies are limited to ${MAX_BODY_BYTES / 1024} KiB`,
            {
              details: { limitBytes: MAX_BODY_BYTES },
            },
          ),
        ),
    }),
  );
  app.use("/v1/*", async (c, next) => {
    if (mode === "admin") {
      c.set("principal", { kind: "operator" });
    } else if (
      !(c.req.method === "POST" && c.req.path === "/v1/tenants") &&
      c.req.path !== "/v1/openapi.json"
    ) {
      const auth = c.req.header("authorization");
      const m = auth ? /^Bearer\s+(\S+)$/i.exec(auth) : null;
      c.set("principal", tenants.authenticate(m?.[1]));
    }
    await next();
  });

  app.get("/healthz", (c) => c.json({ ok: true }));

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/tenants",
      summary: "Sign up a tenant (7-day trial, no payment data)",
      request: { body: jsonBody(CreateTenant) },
      responses: {
        201: json(CreatedTenant, "created; tokens are shown only in this answer"),
        400: errors[400],
        409: errors[400],
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const { tenant, apiToken, gatewayToken } = await tenants.create(body);
      const view = tenants.view(tenant);
      return c.json(
        {
          tenant: view,
          apiToken,
          gateway: {
            url: view.gatewayUrl,
            publicUrl: view.publicUrl,
            caFile: tenants.caFile(),
            token: gatewayToken,
          },
        },
        201,
      );
    },
  );

  if (mode === "admin") {
    app.openapi(
      createRoute({
        method: "get",
        path: "/v1/tenants",
        summary: "List every tenant (operator only)",
        responses: { 200: json(z.object({ tenants: z.array(Tenant) }), "all tenants") },
      }),
      (c) => c.json({ tenants: tenants.list(c.get("principal")).map((t) => tenants.view(t)) }, 200),
    );
    app.openapi(
      createRoute({
        method: "post",
        path: "/v1/tenants/{name}/{action}",
        summary: "Suspend, resume, restart or subscribe a tenant (operator only)",
        request: {
          params: z.object({
            name: NameParam,
            action: z.enum(["suspend", "resume", "restart", "subscribe"]),
          }),
        },
        responses: { 200: json(Tenant, "the tenant after the change"), 404: errors[404] },
      }),
      async (c) => {
        const { name, action } = c.req.valid("param");
        const principal = c.get("principal");
        const t =
          action === "restart"
            ? await tenants.restart(principal, name)
            : tenants.setDesired(principal, name, action);
        return c.json(tenants.view(t), 200);
      },
    );
  }

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/tenants/{name}",
      summary: "Get a tenant",
      request: tenantParams,
      responses: { 200: json(Tenant, "the tenant"), ...tenantErrors },
    }),
    (c) => c.json(tenants.view(tenants.get(c.get("principal"), c.req.valid("param").name)), 200),
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/v1/tenants/{name}",
      summary: "Delete a tenant: its gateway is stopped and all its data removed",
      request: tenantParams,
      responses: { 202: json(Tenant, "deletion under way"), ...tenantErrors },
    }),
    (c) => c.json(tenants.view(tenants.delete(c.get("principal"), c.req.valid("param").name)), 202),
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/tenants/{name}/instance",
      summary: "Status of the tenant's gateway instance",
      request: tenantParams,
      responses: { 200: json(Instance, "instance status"), ...tenantErrors },
    }),
    async (c) => c.json(await tenants.instance(c.get("principal"), c.req.valid("param").name), 200),
  );

  const EgressView = z
    .object({
      tenant: z.string(),
      mode: z.enum(["per tenant", "none"]),
      counters: z.object({
        allowed: z.number().int(),
        denied: z.number().int(),
        bytesUp: z.number().int(),
        bytesDown: z.number().int(),
        active: z.number().int(),
      }),
      log: z.array(
        z.object({
          time: z.string(),
          method: z.string(),
          host: z.string().nullable(),
          port: z.number().int().nullable(),
          verdict: z.enum(["allow", "deny"]),
          reason: z.string(),
          bytesUp: z.number().int(),
          bytesDown: z.number().int(),
          status: z.number().int().optional(),
        }),
      ),
    })
    .openapi("Egress");

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/tenants/{name}/egress",
      summary: "The tenant's egress through the filtering proxy: counters and the latest connections",
      request: {
        ...tenantParams,
        query: z.strictObject({ limit: z.coerce.number().int().min(1).max(1000).default(100) }),
      },
      responses: { 200: json(EgressView, "egress counters and log"), ...tenantErrors },
    }),
    async (c) =>
      c.json(
        await tenants.egress(c.get("principal"), c.req.valid("param").name, c.req.valid("query").limit),
        200,
      ),
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/tenants/{name}/events",
      summary: "What happened to the tenant, oldest first",
      request: tenantParams,
      responses: { 200: json(z.object({ events: z.array(Event) }), "events"), ...tenantErrors },
    }),
    (c) =>
      c.json(
        {
          events: tenants
            .events(c.get("principal"), c.req.valid("param").name)
            .map((e) => ({ ...e, at: new Date(e.at).toISOString() })),
        },
        200,
      ),
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/tenants/{name}/tokens",
      summary: "The tenant's API tokens (never their values)",
      request: tenantParams,
      responses: { 200: json(z.object({ tokens: z.array(Token) }), "tokens"), ...tenantErrors },
    }),
    (c) =>
      c.json(
        {
          tokens: tenants.tokens(c.get("principal"), c.req.valid("param").name).map((t) => ({
            id: t.id,
            label: t.label,
            createdAt: iso(t.createdAt)!,
            lastUsedAt: iso(t.lastUsedAt),
          })),
        },
        200,
      ),
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/tenants/{name}/tokens",
      summary: "Create an API token; its value is shown once",
      request: { ...tenantParams, body: jsonBody(CreateToken, false) },
      responses: { 201: json(z.object({ token: Token, value: z.string() }), "created"), ...tenantErrors },
    }),
    (c) => {
      const { record, token } = tenants.createToken(
        c.get("principal"),
        c.req.valid("param").name,
        c.req.valid("json")?.label ?? "api token",
      );
      return c.json(
        {
          token: { id: record.id, label: record.label, createdAt: iso(record.createdAt)!, lastUsedAt: null },
          value: token,
        },
        201,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/v1/tenants/{name}/tokens/{id}",
      summary: "Revoke an API token",
      request: { params: z.object({ name: NameParam, id: z.string().regex(/^tok_[0-9a-f]{12}$/) }) },
      responses: { 204: { description: "revoked" }, ...tenantErrors },
    }),
    (c) => {
      const { name, id } = c.req.valid("param");
      tenants.deleteToken(c.get("principal"), name, id);
      return c.body(null, 204);
    },
  );

  if (mode === "admin" && opts.models) modelRoutes(app, opts.models);
  if (mode === "admin" && opts.pools) poolRoutes(app, opts.pools);
  if (opts.egressAllow) egressAllowRoutes(app, mode, opts.egressAllow);
  if (opts.llm) llmRoutes(app, mode, opts.llm);

  app.doc("/v1/openapi.json", {
    openapi: "3.0.0",
    info: {
      title: mode === "admin" ? "clawkeep operator API" : "clawkeep API",
      version: "1",
      description: "Host OpenClaw gateways for many tenants at three isolation tiers.",
    },
  });

  return app;
}

/**
 * Egress allowlists beyond the proxy's defaults: a tenant reads and sets its own additions; the
 * operator also sets additions for every tenant (admin API only).
 */
function egressAllowRoutes(app: OpenAPIHono<Env>, mode: ApiMode, allow: EgressAllowService): void {
  const Hosts = z.strictObject({
    hosts: z
      .array(z.string().max(253))
      .max(MAX_ALLOW_ENTRIES)
      .openapi({ example: ["api.example.com", "*.githubusercontent.com"] }),
  });
  const Allowlist = z
    .object({
      tenant: z.string(),
      airGapped: z.boolean(),
      defaults: z.array(z.string()),
      operator: z.array(z.string()),
      own: z.array(z.string()),
    })
    .openapi("EgressAllowlist");
  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/tenants/{name}/egress/allow",
      summary:
        "What the tenant may reach through the egress proxy: defaults, operator's and its own additions",
      request: tenantParams,
      responses: { 200: json(Allowlist, "the allowlist"), ...tenantErrors },
    }),
    (c) => c.json(allow.view(c.get("principal"), c.req.valid("param").name), 200),
  );
  app.openapi(
    createRoute({
      method: "put",
      path: "/v1/tenants/{name}/egress/allow",
      summary:
        "Replace the tenant's own additions (host names, *.domain.tld, IP literals); private and loopback answers stay refused",
      request: { ...tenantParams, body: jsonBody(Hosts) },
      responses: { 200: json(Allowlist, "the new allowlist"), 400: errors[400], ...tenantErrors },
    }),
    async (c) =>
      c.json(
        await allow.setTenant(c.get("principal"), c.req.valid("param").name, c.req.valid("json").hosts),
        200,
      ),
  );
  if (mode !== "admin") return;
  const Operator = z
    .object({ defaults: z.array(z.string()), settings: z.array(z.string()), operator: z.array(z.string()) })
    .openapi("OperatorEgressAllowlist");
  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/egress/allow",
      summary: "Hosts every tenant with egress may reach: defaults, settings and the operator's additions",
      responses: { 200: json(Operator, "the operator's allowlist") },
    }),
    (c) => c.json(allow.operatorView(c.get("principal")), 200),
  );
  app.openapi(
    createRoute({
      method: "put",
      path: "/v1/egress/allow",
      summary: "Replace the operator's additions for every tenant (operator only)",
      request: { body: jsonBody(Hosts) },
      responses: { 200: json(Operator, "the new allowlist"), 400: errors[400] },
    }),
    async (c) => c.json(await allow.setOperator(c.get("principal"), c.req.valid("json").hosts), 200),
  );
}

/** An own provider's model id: what providers name models ("gpt-4o-mini", "claude-sonnet-4-5", "org/model:tag"). */
const LLM_MODEL_RE = /^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$/;

/**
 * A tenant's LLM access through the relay (both APIs, the tenant on itself): its usage, its own
 * provider (bring your own key) and the rotation of its relay key; every tenant's usage (admin).
 */
function llmRoutes(app: OpenAPIHono<Env>, mode: ApiMode, llm: LlmService): void {
  const Limits = z
    .object({
      tokensPerDay: z.number().int().nullable(),
      tokensPerMonth: z.number().int().nullable(),
      requestsPerMinute: z.number().int().nullable(),
    })
    .openapi("LlmLimits", { description: "null: no limit of that kind" });
  const PlanName = z
    .enum(["trial", ...TIERS])
    .openapi({ description: "the trial's until the tenant subscribes" });
  const Totals = z.object({
    inputTokens: z.number().int(),
    outputTokens: z.number().int(),
    tokens: z.number().int(),
    requests: z.number().int(),
  });
  const Usage = z
    .object({
      tenant: z.string(),
      plan: PlanName,
      limits: Limits,
      today: Totals.extend({ day: z.string() }),
      thisMonth: Totals.extend({ month: z.string() }),
      days: z.array(
        z.object({
          day: z.string(),
          model: z.string(),
          inputTokens: z.number().int(),
          outputTokens: z.number().int(),
          requests: z.number().int(),
        }),
      ),
    })
    .openapi("LlmUsage");
  const Llm = z
    .object({
      tenant: z.string(),
      plan: PlanName,
      models: z.enum(["platform", "none"]).openapi({ description: "none: air-gapped (Enterprise)" }),
      limits: Limits,
      provider: z.enum(["platform", "own"]),
      own: z
        .object({ baseUrl: z.string(), model: z.string().nullable(), updatedAt: z.string() })
        .nullable()
        .openapi({ description: "the tenant's own provider; its key is never shown" }),
      allowedBaseUrls: z.array(z.string()),
    })
    .openapi("LlmAccess");
  const OwnKey = z
    .strictObject({
      baseUrl: z.string({ message: "baseUrl is required" }).max(500).openapi({
        example: "https://api.openai.com/v1",
        description: "one of the operator's allowed base URLs",
      }),
      apiKey: z
        .string({ message: "apiKey is required" })
        .min(1, "apiKey is required")
        .max(4096)
        .regex(/^[\x21-\x7e]+$/, "printable ASCII without spaces")
        .openapi({ description: "the tenant's own provider key; sealed, never shown again" }),
      model: z
        .string()
        .regex(LLM_MODEL_RE, "a provider's model id: letters, digits and . _ : / @ + -")
        .optional()
        .openapi({ example: "gpt-4o-mini" }),
    })
    .openapi("OwnLlmKey");

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/tenants/{name}/usage",
      summary:
        "The tenant's LLM usage per UTC day and model, today's and this month's totals, and its limits",
      request: {
        ...tenantParams,
        query: z.strictObject({ days: z.coerce.number().int().min(1).max(366).default(31) }),
      },
      responses: { 200: json(Usage, "usage"), 400: errors[400], ...tenantErrors },
    }),
    (c) => c.json(llm.usage(c.get("principal"), c.req.valid("param").name, c.req.valid("query").days), 200),
  );
  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/tenants/{name}/llm",
      summary: "The tenant's LLM access: plan, limits, and whether it uses its own provider (never the key)",
      request: tenantParams,
      responses: { 200: json(Llm, "LLM access"), ...tenantErrors },
    }),
    (c) => c.json(llm.view(c.get("principal"), c.req.valid("param").name), 200),
  );
  app.openapi(
    createRoute({
      method: "put",
      path: "/v1/tenants/{name}/llm",
      summary:
        "Use the tenant's own provider key (bring your own key): sealed under the tenant's key, used only by the relay",
      request: { ...tenantParams, body: jsonBody(OwnKey) },
      responses: {
        200: json(Llm, "LLM access now"),
        400: {
          ...errors[400],
          description: "invalid request, a base URL the operator does not allow, or air-gapped",
        },
        ...tenantErrors,
      },
    }),
    async (c) =>
      c.json(await llm.setOwnKey(c.get("principal"), c.req.valid("param").name, c.req.valid("json")), 200),
  );
  app.openapi(
    createRoute({
      method: "delete",
      path: "/v1/tenants/{name}/llm",
      summary: "Remove the tenant's own provider: back to the platform's",
      request: tenantParams,
      responses: { 200: json(Llm, "LLM access now"), ...tenantErrors },
    }),
    async (c) => c.json(await llm.clearOwnKey(c.get("principal"), c.req.valid("param").name), 200),
  );
  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/tenants/{name}/llm/rotate-key",
      summary:
        "Replace the tenant's LLM relay key; the old one stops working, a running gateway restarts with the new one",
      request: tenantParams,
      responses: {
        200: json(z.object({ tenant: z.string(), restarted: z.boolean() }), "rotated"),
        400: { ...errors[400], description: "air-gapped: no relay key" },
        ...tenantErrors,
      },
    }),
    async (c) => c.json(await llm.rotateKey(c.get("principal"), c.req.valid("param").name), 200),
  );
  if (mode !== "admin") return;
  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/usage",
      summary: "Every tenant's LLM usage today and this month, with its limits (operator only)",
      responses: {
        200: json(
          z
            .object({
              day: z.string(),
              month: z.string(),
              tenants: z.array(
                z.object({
                  tenant: z.string(),
                  tier: z.enum(TIERS),
                  plan: PlanName,
                  limits: Limits,
                  today: Totals,
                  thisMonth: Totals,
                }),
              ),
            })
            .openapi("LlmUsageSummary"),
          "every tenant's usage",
        ),
      },
    }),
    (c) => c.json(llm.usageAll(c.get("principal")), 200),
  );
}

/** The Starter pools (admin API only): what runs where, and moving a tenant between pools. */
function poolRoutes(app: OpenAPIHono<Env>, pools: PoolService): void {
  const Pool = z
    .object({
      id: z.string(),
      state: z.string(),
      address: z.string(),
      capacity: z.number().int(),
      tenants: z.array(z.string()),
    })
    .openapi("Pool");
  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/pools",
      summary: "The Starter pools, their capacity and tenants (operator only)",
      responses: { 200: json(z.object({ pools: z.array(Pool) }), "every pool") },
    }),
    async (c) => c.json({ pools: await pools.list(c.get("principal")) }, 200),
  );
  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/pools/moves",
      summary:
        "Move a Starter tenant to another pool with its data (operator only); its URL stays, it restarts in the new pool",
      request: {
        body: jsonBody(
          z.strictObject({
            tenant: NameParam,
            to: z
              .string()
              .regex(/^pool-[0-9]{1,5}$/)
              .optional()
              .openapi({ description: "the pool; default: wherever placement puts it" }),
          }),
        ),
      },
      responses: {
        200: json(z.object({ tenant: z.string(), pool: z.string() }), "moved"),
        400: errors[400],
        404: errors[404],
      },
    }),
    async (c) => {
      const { tenant, to } = c.req.valid("json");
      return c.json(await pools.move(c.get("principal"), tenant, to), 200);
    },
  );
}

/**
 * The operator's model registry (admin API only): register, list, check and remove GGUF models,
 * and pick the model of a plan or a tenant. A choice takes effect at the tenant's next start.
 */
function modelRoutes(app: OpenAPIHono<Env>, models: ModelService): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/models",
      summary: "Registered models and who uses them (operator only)",
      responses: { 200: json(z.object({ models: z.array(Model) }), "all registered models") },
    }),
    (c) => c.json({ models: models.list() }, 200),
  );
  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/models",
      summary: "Register a GGUF model after checking its file: header, size, SHA-256 (operator only)",
      request: { body: jsonBody(RegisterModel) },
      responses: {
        201: json(Model, "registered"),
        200: json(Model, "already registered with this file"),
        400: { ...errors[400], description: "invalid request, or the file is missing or corrupt" },
        409: { ...errors[400], description: "the id is registered with another file" },
      },
    }),
    async (c) => {
      const { model, created } = await models.register(c.req.valid("json"), { signal: c.req.raw.signal });
      return created ? c.json(model, 201) : c.json(model, 200);
    },
  );
  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/models/{id}",
      summary: "One registered model (operator only)",
      request: { params: z.object({ id: ModelIdParam }) },
      responses: { 200: json(Model, "the model"), 404: { ...errors[404], description: "no such model" } },
    }),
    (c) => c.json(models.get(c.req.valid("param").id), 200),
  );
  app.openapi(
    createRoute({
      method: "delete",
      path: "/v1/models/{id}",
      summary: "Remove a model from the registry; the file is left alone (operator only)",
      request: { params: z.object({ id: ModelIdParam }) },
      responses: {
        204: { description: "removed" },
        404: { ...errors[404], description: "no such model" },
        409: { ...errors[400], description: "a plan or tenant uses it" },
      },
    }),
    (c) => {
      models.remove(c.req.valid("param").id);
      return c.body(null, 204);
    },
  );
  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/models/{id}/verify",
      summary: "Check a model's file against its pins now; the answer carries the outcome (operator only)",
      request: { params: z.object({ id: ModelIdParam }) },
      responses: {
        200: json(Model, "the model with the outcome in status and reason"),
        404: { ...errors[404], description: "no such model" },
      },
    }),
    async (c) => c.json(await models.verify(c.req.valid("param").id, c.req.raw.signal), 200),
  );
  app.openapi(
    createRoute({
      method: "put",
      path: "/v1/plans/{tier}/model",
      summary: "Set or clear the default model of a plan with a local model (operator only)",
      request: {
        params: z.object({ tier: z.enum(TIERS).openapi({ param: { name: "tier", in: "path" } }) }),
        body: jsonBody(AssignModel),
      },
      responses: {
        200: json(z.object({ tier: z.enum(TIERS), model: z.string().nullable() }), "the plan's default now"),
        400: errors[400],
        404: { ...errors[404], description: "no such model" },
      },
    }),
    (c) => c.json(models.setPlanModel(c.req.valid("param").tier, c.req.valid("json").model), 200),
  );
  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/tenants/{name}/model",
      summary: "A tenant's own model and the one it is served by (operator only)",
      request: tenantParams,
      responses: { 200: json(TenantModel, "the tenant's model"), 404: errors[404] },
    }),
    (c) => c.json(models.tenantModel(c.req.valid("param").name), 200),
  );
  app.openapi(
    createRoute({
      method: "put",
      path: "/v1/tenants/{name}/model",
      summary: "Set or clear a tenant's own model; applies at its next start (operator only)",
      request: { ...tenantParams, body: jsonBody(AssignModel) },
      responses: { 200: json(TenantModel, "the tenant's model now"), 400: errors[400], 404: errors[404] },
    }),
    (c) => c.json(models.setTenantModel(c.req.valid("param").name, c.req.valid("json").model), 200),
  );
}
