import { isIP, type Socket } from "node:net";
import { canonicalIp } from "./schema.ts";

/*
 * PROXY protocol v1 (haproxy's proxy-protocol.txt, section 2.1): the egress proxy writes one line
 * as the very first bytes of each connection it opens to the relay, naming the tenant's source
 * address; the tenant's own bytes come after it, so it cannot forge the line.
 *
 *   PROXY TCP4 10.0.0.5 127.0.0.1 51234 4180\r\n      (TCP6 for IPv6; at most 107 bytes)
 *   PROXY UNKNOWN ...\r\n                             (source unknown: matches no tenant)
 */

/** The longest v1 line, CRLF included. */
export const PROXY_LINE_MAX = 107;
const SIGNATURE = Buffer.from("PROXY ");

/** What a connection's first bytes say about its source. */
export type ProxyHeader =
  /** A TCP4/TCP6 line: the original client's address (canonical) and port. */
  | { kind: "proxied"; source: string; sourcePort: number }
  /** PROXY UNKNOWN: a proxied connection whose source the proxy could not tell. */
  | { kind: "unknown" };

const PORT = /^(?:0|[1-9]\d{0,4})$/;

/**
 * Parses one v1 line without its CRLF. Returns null when it is malformed: wrong words, an address
 * of the wrong family, a port out of range, extra or missing spaces.
 */
export function parseProxyLine(line: string): ProxyHeader | null {
  if (line === "PROXY UNKNOWN" || line.startsWith("PROXY UNKNOWN ")) return { kind: "unknown" };
  const parts = line.split(" ");
  if (parts.length !== 6 || parts[0] !== "PROXY") return null;
  const [, proto, src, dst, sport, dport] = parts as [string, string, string, string, string, string];
  const family = proto === "TCP4" ? 4 : proto === "TCP6" ? 6 : 0;
  if (family === 0 || isIP(src) !== family || isIP(dst) !== family) return null;
  if (!PORT.test(sport) || !PORT.test(dport) || Number(sport) > 65535 || Number(dport) > 65535) return null;
  const source = canonicalIp(src);
  return source ? { kind: "proxied", source, sourcePort: Number(sport) } : null;
}

/**
 * Reads a connection's optional PROXY line. Resolves with the header, or null when the first
 * bytes are not "PROXY " (a host-local caller speaking HTTP straight away); every byte after the
 * line is put back into the socket for the HTTP parser. Rejects (the caller closes the socket)
 * when the line is malformed, longer than PROXY_LINE_MAX, the connection ends first, or nothing
 * complete arrives within `timeoutMs`.
 */
export function readProxyHeader(socket: Socket, timeoutMs: number): Promise<ProxyHeader | null> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    const finish = (err: Error | null, header: ProxyHeader | null = null, rest?: Buffer) => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("error", onError);
      socket.off("close", onEnd);
      socket.pause();
      if (err) return reject(err);
      if (rest?.length) socket.unshift(rest);
      resolve(header);
    };
    const onData = (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      const n = Math.min(buf.length, SIGNATURE.length);
      if (!buf.subarray(0, n).equals(SIGNATURE.subarray(0, n))) return finish(null, null, buf);
      const crlf = buf.indexOf("\r\n");
      if (crlf < 0) {
        if (buf.length >= PROXY_LINE_MAX) finish(new Error("PROXY line longer than 107 bytes"));
        return;
      }
      if (crlf + 2 > PROXY_LINE_MAX) return finish(new Error("PROXY line longer than 107 bytes"));
      const header = parseProxyLine(buf.subarray(0, crlf).toString("latin1"));
      if (!header) return finish(new Error("malformed PROXY line"));
      finish(null, header, buf.subarray(crlf + 2));
    };
    const onEnd = () => finish(new Error("the connection ended before its first line"));
    const onError = (err: Error) => finish(err);
    const timer = setTimeout(
      () => finish(new Error(`no complete first line within ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.once("close", onEnd);
    socket.once("error", onError);
  });
}
