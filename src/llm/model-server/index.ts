/** The on-instance model server for Enterprise tenants: what the control plane and tests use. */

export { type LlamaEngineOptions, loadLlamaEngine, MIN_REPLY_TOKENS } from "./engine.ts";
export {
  MODEL_SERVER_FAILURES,
  ModelServerError,
  type ModelServerFailure,
} from "./errors.ts";
export { FakeEngine } from "./fake.ts";
export { API_KEY_ENV, defaultModelId, EXIT_FATAL } from "./protocol.ts";
export { type ModelServer, type ModelServerOptions, startModelServer } from "./server.ts";
export {
  formatModelStatus,
  LOCAL_MODEL_STATES,
  type LocalModelState,
  type LocalModelStatus,
  parseModelStatus,
} from "./status.ts";
export {
  type ModelServerProcess,
  type ModelServerProcessOptions,
  type ModelServerState,
  type ModelSpec,
  modelServerCommand,
  startModelServerProcess,
} from "./supervisor.ts";
export type { ChatEngine, GenerationResult, GenerationSink, ModelInfo } from "./types.ts";
export {
  type ModelExpectation,
  parseModelId,
  parseModelPath,
  parseSha256,
  sha256File,
  type VerifiedModelFile,
  verifyModelFile,
} from "./verify.ts";
