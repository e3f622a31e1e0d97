import { request } from "node:http";
import { ClawkeepError, type ErrorCode } from "../core/errors.ts";

/** Talks to the operator API on its unix socket. */
export class AdminClient {
  constructor(readonly socketPath: string) {}

  call<T>(method: string, path: string, body?: unknown): Promise<T> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = request(
        {
          socketPath: this.socketPath,
          path,
          method,
          headers: payload
            ? { "content-type": "application/json", "content-length": Buffer.byteLength(payload) }
            : {},
        },
        (res) => {
          let data = "";
          res.setEncoding("utf8");
          res.on("data", (d: string) => {
            data += d;
          });
          res.on("end", () => {
            const parsed = data ? (JSON.parse(data) as unknown) : null;
            if ((res.statusCode ?? 500) >= 400) {
              const e = (parsed as { error?: { code: ErrorCode; message: string } } | null)?.error;
              reject(new ClawkeepError(e?.code ?? "internal", e?.message ?? `HTTP ${res.statusCode}`));
            } else resolve(parsed as T);
          });
        },
      );
      req.on("error", (err: NodeJS.ErrnoException) => {
        const why =
          err.code === "ENOENT" || err.code === "ECONNREFUSED"
            ? `clawkeep is not running (no admin socket at ${this.socketPath}); start it with 'npm start'`
            : err.code === "EACCES"
              ? `permission denied on ${this.socketPath}: the admin API is for root (the operator) only`
              : err.message;
        reject(new ClawkeepError("runtime_unavailable", why, { cause: err }));
      });
      req.end(payload);
    });
  }
}
