import { chmod, lstat, mkdir, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { connect, type Socket } from "node:net";
import { dirname } from "node:path";
import { ServiceError } from "./errors.ts";
import { type PeerCredentials, peerCredentials, peerCredentialsAvailable } from "./peer.ts";

/**
 * One way to serve a local service: HTTP/1.1 over a unix socket of mode 0600 in a directory
 * created 0700 (the socket's permissions are the first authentication; it is never on TCP), with the
 * caller's uid checked through SO_PEERCRED where an allow-list is given. The handler is a plain
 * node request listener, so a hono app fits through `getRequestListener(app.fetch)`; each service
 * keeps its own routes and wire format.
 */

/** A node request listener; a rejected promise is answered 500 `internal` (or the socket is cut). */
export type SocketHandler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export interface SocketServerOptions {
  /** What the service is called in errors and refusals: "the key service", "the egress admin API". */
  service: string;
  /** Absolute path of the socket. Its directory is created 0700 when missing. */
  socket: string;
  handler: SocketHandler;
  /**
   * When set, a caller whose uid (SO_PEERCRED) is not in the list gets 403 even if the socket's
   * permissions were loosened, and so does a caller whose credentials cannot be read: the check
   * fails closed (a service that asked for it is never open to an unknown caller). Unset: no uid
   * check.
   */
  allowedUids?: readonly number[];
  /** Reads a connection's peer credentials (default SO_PEERCRED through koffi). For tests. */
  readPeer?: (socket: Socket) => Promise<PeerCredentials | null>;
  /**
   * Called before a caller is refused; returns the fields of the 403's error body (default
   * `{code: "forbidden", message}`). The key service records the refusal in its audit log here.
   */
  onRefused?: (
    caller: PeerCredentials,
    req: IncomingMessage,
    message: string,
  ) => ErrorBody | Promise<ErrorBody | undefined> | undefined;
  /** What a handler's unexpected rejection is answered with (default 500 `internal`). */
  onError?: (err: unknown, req: IncomingMessage, res: ServerResponse) => void;
  /**
   * How long close() lets calls in flight finish before it cuts their connections. Default:
   * as long as they take. 0 cuts them at once.
   */
  drainMs?: number;
  /** Passed to node:http (default 5000). */
  keepAliveTimeout?: number;
}

export interface SocketServer {
  readonly socket: string;
  /** Whether callers' uids can be read on this host (koffi and libc are there). */
  readonly peerCredentials: boolean;
  /** Stops accepting, lets calls in flight finish (see drainMs), removes the socket. Idempotent. */
  close(): Promise<void>;
  /** Settles once close() has finished. */
  readonly closed: Promise<void>;
}

/** The fields of a typed error body: `{"error": {"code", "message", ...}}`. */
export interface ErrorBody {
  code: string;
  message: string;
  [extra: string]: unknown;
}

/** Answers JSON with content-length. */
export function sendJson(res: ServerResponse, status: number, data: unknown): void {
  const body = Buffer.from(JSON.stringify(data));
  res.writeHead(status, { "content-type": "application/json", "content-length": body.length });
  res.end(body);
}

/**
 * Answers `{"error": {...}}` with `status`. When the headers are already out (a stream failed
 * half-way), the connection is cut instead: the client sees an incomplete answer, never a wrong one.
 */
export function sendError(res: ServerResponse, status: number, error: ErrorBody): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, status, { error });
}

/** Sends raw bytes and zeroes them once written (or once the connection is gone). */
export function sendBytes(res: ServerResponse, bytes: Buffer, headers: Record<string, string> = {}): void {
  let wiped = false;
  const wipe = () => {
    if (!wiped) bytes.fill(0);
    wiped = true;
  };
  res.on("close", wipe);
  res.writeHead(200, {
    "content-type": "application/octet-stream",
    "content-length": bytes.length,
    ...headers,
  });
  res.end(bytes, wipe);
}

/**
 * Reads a request body of at most `limit` bytes. Every chunk is zeroed once copied (bodies may hold
 * key material); the caller owns (and zeroes) the result. A larger body rejects with `tooLarge()`
 * (default ServiceError body_too_large) and destroys the request, or with `drain`, reads and
 * discards the rest so that the error can still be answered.
 */
export function readBody(
  req: IncomingMessage,
  limit: number,
  tooLarge: () => Error = () =>
    new ServiceError("body_too_large", `request body is larger than ${limit} bytes`),
  opts: { drain?: boolean } = {},
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    const wipe = () => {
      for (const c of chunks) c.fill(0);
    };
    req.on("data", (c: Buffer) => {
      if (failed) {
        c.fill(0);
        return;
      }
      size += c.length;
      if (size > limit) {
        failed = true;
        c.fill(0);
        wipe();
        chunks.length = 0;
        if (!opts.drain) req.destroy();
        reject(tooLarge());
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      wipe();
      resolve(body);
    });
    req.on("error", (err) => {
      wipe();
      reject(err);
    });
  });
}

/**
 * Reads a JSON request body of at most `limit` bytes (readBody with `drain`, so the error can
 * still be answered) and parses it; the raw bytes are zeroed once parsed. A larger body rejects
 * with `errors.tooLarge()`, one that is not JSON with `errors.notJson()`.
 */
export async function readJsonBody(
  req: IncomingMessage,
  limit: number,
  errors: { tooLarge: () => Error; notJson: () => Error },
): Promise<unknown> {
  const body = await readBody(req, limit, errors.tooLarge, { drain: true });
  try {
    return JSON.parse(body.toString("utf8"));
  } catch {
    throw errors.notJson();
  } finally {
    body.fill(0);
  }
}

/** Whether something accepts connections on the unix socket at `path`. */
export function socketAnswers(path: string): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const s = connect(path);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/**
 * Creates `path` with mode 0700 (and its missing parents) when it is missing. An existing
 * directory is left as it is (it may be a shared one like /run; a service that owns its directory
 * checks it itself, as the key service does). Throws ServiceError bad_socket_path when it is not a
 * directory.
 */
export async function ensureSocketDir(path: string): Promise<void> {
  await mkdir(path, { recursive: true, mode: 0o700 });
  if (!(await lstat(path)).isDirectory())
    throw new ServiceError("bad_socket_path", `${path} is not a directory`);
}

/**
 * Removes a dead socket at `path`. Throws ServiceError already_running when a live server answers
 * there (another instance of the service: never take its socket), bad_socket_path when the path
 * holds anything but a socket.
 */
export async function clearStaleSocket(path: string): Promise<void> {
  let st: Awaited<ReturnType<typeof lstat>>;
  try {
    st = await lstat(path);
  } catch {
    return;
  }
  if (!st.isSocket())
    throw new ServiceError("bad_socket_path", `${path} exists and is not a socket; refusing to replace it`);
  if (await socketAnswers(path))
    throw new ServiceError("already_running", `another process already listens on ${path}`);
  await rm(path, { force: true });
}

/**
 * Serves `handler` on the unix socket `opts.socket`: creates its directory 0700, refuses to start
 * when a live server answers there (ServiceError already_running), replaces a stale socket,
 * listens with umask 0177 and chmods the socket 0600. Throws ServiceError bad_socket_path for a
 * path that is too long or taken by something else, listen_failed when listen(2) fails.
 */
export async function serveSocket(opts: SocketServerOptions): Promise<SocketServer> {
  const path = opts.socket;
  if (Buffer.byteLength(path) > 100)
    throw new ServiceError("bad_socket_path", `socket path ${path} is too long for a unix socket`);
  await ensureSocketDir(dirname(path));
  await clearStaleSocket(path);
  const peerOk = await peerCredentialsAvailable();
  const allowed = opts.allowedUids ? new Set(opts.allowedUids) : null;

  const refuse = async (caller: PeerCredentials, req: IncomingMessage, res: ServerResponse) => {
    const message = `uid ${caller.uid} (pid ${caller.pid}) may not use ${opts.service}`;
    const body = (await opts.onRefused?.(caller, req, message)) ?? { code: "forbidden", message };
    req.resume();
    res.setHeader("connection", "close");
    sendError(res, 403, body);
  };
  const refuseUnknown = (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    res.setHeader("connection", "close");
    sendError(res, 403, {
      code: "forbidden",
      message: `the caller's uid cannot be read (SO_PEERCRED), so ${opts.service} does not serve it`,
    });
  };
  const onError =
    opts.onError ??
    ((_err: unknown, _req: IncomingMessage, res: ServerResponse) =>
      sendError(res, 500, { code: "internal", message: "internal error" }));

  const server: Server = createServer({ keepAliveTimeout: opts.keepAliveTimeout ?? 5_000 }, (req, res) => {
    void (async () => {
      try {
        if (allowed) {
          const caller = await (opts.readPeer ?? peerCredentials)(req.socket);
          if (!caller) return refuseUnknown(req, res);
          if (!allowed.has(caller.uid)) return await refuse(caller, req, res);
        }
        await opts.handler(req, res);
      } catch (err) {
        try {
          onError(err, req, res);
        } catch {
          res.destroy();
        }
      }
    })();
  });

  const oldMask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      const onListenError = (err: Error) =>
        reject(new ServiceError("listen_failed", `cannot listen on ${path}: ${err.message}`, { cause: err }));
      server.once("error", onListenError);
      server.listen(path, () => {
        server.off("error", onListenError);
        resolve();
      });
    });
  } finally {
    process.umask(oldMask);
  }
  let ino: number;
  try {
    await chmod(path, 0o600);
    ino = (await lstat(path)).ino;
  } catch (err) {
    server.close();
    throw err;
  }

  let markClosed!: () => void;
  const closed = new Promise<void>((resolve) => {
    markClosed = resolve;
  });
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      const done = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      let cut: NodeJS.Timeout | undefined;
      if (opts.drainMs === 0) server.closeAllConnections();
      else if (opts.drainMs !== undefined) cut = setTimeout(() => server.closeAllConnections(), opts.drainMs);
      await done;
      clearTimeout(cut);
      try {
        // Only our own socket: a later server may already have replaced it.
        if ((await lstat(path)).ino === ino) await rm(path, { force: true });
      } catch {
        // Already gone.
      }
      markClosed();
    })();
    return closing;
  };
  return { socket: path, peerCredentials: peerOk, close, closed };
}
