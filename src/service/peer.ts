import type { Socket } from "node:net";

/** The process on the other end of a unix socket, as the kernel reports it (SO_PEERCRED). */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

type GetSockOpt = (fd: number, level: number, name: number, val: Buffer, len: number[]) => number;
/** The part of koffi's API used here. */
interface Koffi {
  load(path: string): { func(signature: string): GetSockOpt };
}

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;

let loaded: Promise<GetSockOpt | null> | undefined;

/** getsockopt(2) from libc through koffi; null when koffi or libc is not available (then callers are "socket"). */
function getsockopt(): Promise<GetSockOpt | null> {
  loaded ??= (async () => {
    if (process.platform !== "linux") return null;
    try {
      // A variable specifier: koffi is optional here; without it callers are recorded as "socket".
      const specifier = "koffi";
      const mod = (await import(specifier)) as { default: Koffi };
      const libc = mod.default.load("libc.so.6");
      return libc.func(
        "int getsockopt(int fd, int level, int name, _Out_ uint8_t *val, _Inout_ uint32_t *len)",
      );
    } catch {
      return null;
    }
  })();
  return loaded;
}

/** Whether peer credentials can be read on this host. */
export async function peerCredentialsAvailable(): Promise<boolean> {
  return (await getsockopt()) !== null;
}

/**
 * The uid, gid and pid of the process that connected `socket` (an accepted unix socket), or null
 * when they cannot be read. The pid is the connecting process at connect time. Read once per
 * connection and remembered.
 */
export function peerCredentials(socket: Socket): Promise<PeerCredentials | null> {
  let p = cache.get(socket);
  if (!p) {
    p = readPeerCredentials(socket);
    cache.set(socket, p);
  }
  return p;
}

/** Read once per connection: the peer of an accepted socket never changes. */
const cache = new WeakMap<Socket, Promise<PeerCredentials | null>>();

async function readPeerCredentials(socket: Socket): Promise<PeerCredentials | null> {
  const fn = await getsockopt();
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (!fn || typeof fd !== "number" || fd < 0) return null;
  const buf = Buffer.alloc(12);
  const len = [12];
  if (fn(fd, SOL_SOCKET, SO_PEERCRED, buf, len) !== 0 || len[0] !== 12) return null;
  return { pid: buf.readInt32LE(0), uid: buf.readUInt32LE(4), gid: buf.readUInt32LE(8) };
}
