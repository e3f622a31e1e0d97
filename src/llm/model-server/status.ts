/**
 * How a tenant's on-instance model server is doing, as one line an operator reads in the instance
 * status (`details.model` of InstanceStatus), and back. The runtime driver writes it; the control
 * plane parses it into the tenant API's `model` field. Pure.
 */

/**
 * - `none`: the tenant's plan has a local model but none is assigned or registered;
 * - `starting`, `ready`, `restarting`: the server process, as its supervisor sees it;
 * - `failed`: it cannot run (missing or corrupt model file, a load failure) and will not be
 *   retried until the tenant is started again; the message says why;
 * - `stopped`: no server runs for a running instance (for example after a control plane restart).
 */
export const LOCAL_MODEL_STATES = ["none", "starting", "ready", "restarting", "failed", "stopped"] as const;
export type LocalModelState = (typeof LOCAL_MODEL_STATES)[number];

export interface LocalModelStatus {
  state: LocalModelState;
  /** Why, for `none`, `failed` and `stopped`; null otherwise. */
  message: string | null;
}

/** `"ready"`, or `"failed: model file /m.gguf has SHA-256 ..."`: the state, then the reason. */
export function formatModelStatus(s: LocalModelStatus): string {
  const oneLine = s.message?.replace(/\s*\n\s*/g, " ").trim();
  return oneLine ? `${s.state}: ${oneLine}` : s.state;
}

/** The inverse of formatModelStatus; undefined for anything else (a driver without a local model). */
export function parseModelStatus(detail: string | number | undefined): LocalModelStatus | undefined {
  if (typeof detail !== "string") return undefined;
  const m = /^([a-z]+)(?:: ([\s\S]*))?$/.exec(detail);
  const state = m?.[1] as LocalModelState | undefined;
  if (!state || !LOCAL_MODEL_STATES.includes(state)) return undefined;
  return { state, message: m?.[2] ?? null };
}
