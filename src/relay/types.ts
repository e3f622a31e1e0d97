/*
 * The LLM relay's contract: the state the control plane pushes (PUT /v1/state on the admin
 * socket) and the usage it drains (POST /v1/usage/drain). The control plane fills RelayState; the
 * relay never reads the store, the key service or a file for it. Operator keys travel only here,
 * over the 0600 admin socket, and stay in the relay's memory.
 */

/** One provider the relay forwards to, with the credential it injects. */
export interface RelayUpstream {
  /** Referenced by RelayTenant.models[].upstream. */
  id: string;
  /** The provider's API root, ending in /v1 ("https://api.openai.com/v1"). */
  baseUrl: string;
  /** The operator's (or, for `own`, the tenant's) key: Authorization Bearer for openai, x-api-key for anthropic. */
  apiKey: string;
  /** Which API the provider speaks: OpenAI-compatible routes, or Anthropic's /v1/messages. */
  api: "openai" | "anthropic";
  /** The models this upstream serves (informational; the tenant's list decides what a tenant may use). */
  models: string[];
}

/** A tenant's limits; null means no limit of that kind. */
export interface RelayLimits {
  /** Input + output tokens per UTC day. */
  tokensPerDay: number | null;
  /** Input + output tokens per UTC calendar month. */
  tokensPerMonth: number | null;
  /** Requests forwarded per sliding minute. */
  requestsPerMinute: number | null;
}

export interface RelayTenant {
  name: string;
  tenantId: string;
  /** sha256 hex of the tenant's virtual key (the relay never holds the key itself). */
  keyHash: string;
  /** Source addresses the tenant's requests come from (its bridge/pool address; 127.0.0.1 in host mode). */
  addresses: string[];
  /** Models this tenant may use (its plan's), each served by an upstream id. */
  models: Array<{ id: string; upstream: string }>;
  limits: RelayLimits;
  /**
   * Tokens already used (persisted by the control plane) in the current UTC day and month, at push
   * time. It must include every batch the control plane has drained and acknowledged: the relay
   * adds to it only what it has counted and not yet handed out. A day or month older than the
   * relay's clock counts as 0.
   */
  used: { day: string /* YYYY-MM-DD */; dayTokens: number; month: string /* YYYY-MM */; monthTokens: number };
  /** Bring-your-own-key: this tenant's own upstream, used instead of the platform's for every model. */
  own?: RelayUpstream;
}

/**
 * The relay's whole configuration at runtime; PUT /v1/state replaces it atomically (an invalid one
 * is refused and the old one stays). Enterprise tenants are never in it: they are air-gapped.
 */
export interface RelayState {
  tenants: RelayTenant[];
  upstreams: RelayUpstream[];
}

/** Usage counted by the relay for one tenant, model and UTC day, from the provider's own usage fields. */
export interface UsageDelta {
  tenantId: string;
  tenant: string;
  model: string;
  day: string;
  inputTokens: number;
  outputTokens: number;
  requests: number;
}

export type RelayEventType = "llm_wrong_source" | "llm_budget_warning" | "llm_budget_exhausted";

/** Something the control plane records as a tenant event. */
export interface RelayEvent {
  tenant: string;
  tenantId: string;
  type: RelayEventType;
  message: string;
  /** ISO time, by the relay's clock. */
  at: string;
}

/**
 * What a drain hands out: everything counted and not yet acknowledged. The batch stays in the
 * relay until POST /v1/usage/ack names its id; a drain whose answer never arrived is therefore
 * handed out again, merged into the next one. A relay that dies loses what it had not handed out
 * (at most one drain interval).
 */
export interface UsageBatch {
  id: string;
  usage: UsageDelta[];
  events: RelayEvent[];
  /** Events dropped because more than the relay keeps piled up between drains. */
  droppedEvents: number;
}

/** GET /v1/health. */
export interface RelayHealth {
  ok: true;
  url: string;
  /** Whether a state has been pushed since the process started (until then requests get 503). */
  stateLoaded: boolean;
  tenants: number;
  upstreams: number;
  /** Requests being forwarded now. */
  inFlight: number;
}
