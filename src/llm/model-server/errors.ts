import { reasonedError, reasonTable } from "../../service/errors.ts";

/**
 * Why a model-server operation failed, stable across processes: every ModelServerError carries one
 * in `reason` and `details.reason`, and the server process prints it in its fatal line, so the
 * supervisor and the control plane tell a corrupt file from a busy server without parsing messages.
 */
export const MODEL_SERVER_FAILURES = reasonTable({
  /** A caller's input is malformed (model id, path, request field). */
  invalid_request: "invalid_request",
  /** The model file does not exist or is not a regular file. */
  model_missing: "not_found",
  /** The file is not a usable GGUF model: magic, version, size or checksum is wrong, or llama.cpp refused it. */
  model_corrupt: "invalid_request",
  /** No model is registered under that id. */
  not_registered: "not_found",
  /** A model with that id is already registered with another file or checksum. */
  already_registered: "conflict",
  /** The prompt does not fit the context window. */
  context_length_exceeded: "invalid_request",
  /** Every sequence is busy and the queue is full. */
  busy: "capacity_exhausted",
  /** The server process is not running or did not answer. */
  unavailable: "runtime_unavailable",
  /** The model could not be loaded for a reason other than its file (memory, threads, binary). */
  load_failed: "runtime_failed",
  internal: "internal",
});

export type ModelServerFailure = keyof typeof MODEL_SERVER_FAILURES;

/** A failure of a model file check, the model registry, the model server or its supervisor. */
export class ModelServerError extends reasonedError(MODEL_SERVER_FAILURES) {}
