/** What the rest of the platform uses of the LLM relay. */
export { RelayAdminClient } from "./admin.ts";
export { type RelayConfig, renderRelayConfig } from "./config.ts";
export { RELAY_FAILURES, RelayError, type RelayFailure } from "./errors.ts";
export { canonicalIp, validateRelayState } from "./schema.ts";
export { sha256Hex } from "./server.ts";
export {
  type ListeningLine,
  type RelayService,
  type RelayServiceOptions,
  startRelayService,
} from "./service.ts";
export type {
  RelayEvent,
  RelayEventType,
  RelayHealth,
  RelayLimits,
  RelayState,
  RelayTenant,
  RelayUpstream,
  UsageBatch,
  UsageDelta,
} from "./types.ts";
