import { ClawkeepError } from "../../core/errors.ts";

/**
 * What uids, modes, seccomp and the pool's own nftables rules cannot do in a shared network
 * namespace: keep one tenant from binding a neighbour's port (a stopped neighbour's port is free
 * to take, and whoever holds it receives that neighbour's traffic and tokens). Landlock does it
 * per process, without privileges, inherited by every child and kept across execve:
 * - TCP bind only to the tenant's own port range (and port 0, for ephemeral ports);
 * - scoped signals and abstract unix sockets (ABI 6+): no signal to, and no connection to an
 *   abstract socket of, a process outside the tenant's own Landlock domain.
 *
 * The launcher is a short Python program (stdlib ctypes, no compiler, no FFI module in the pool)
 * written into the pool's read-only root; it applies the ruleset to itself and execs the gateway
 * (tini, then node). It refuses to run the gateway when the kernel's Landlock cannot do the
 * network part (ABI < 4): a gateway must never run unconfined by accident.
 */
export const CONFINE_PATH = "/clawkeep/confine.py";

export const CONFINE_SCRIPT = `# clawkeep: confine a Starter tenant's gateway with Landlock, then exec it.
# usage: confine.py FIRST_PORT LAST_PORT -- PROGRAM ARGS...
import ctypes, os, struct, sys

def die(msg):
    sys.stderr.write("clawkeep confine: " + msg + "\\n")
    sys.exit(70)

def main():
    a = sys.argv[1:]
    if len(a) < 4 or a[2] != "--":
        die("usage: confine.py FIRST_PORT LAST_PORT -- PROGRAM ARGS...")
    lo, hi, prog = int(a[0]), int(a[1]), a[3:]
    if not (0 < lo <= hi <= 65535):
        die("bad port range")
    libc = ctypes.CDLL(None, use_errno=True)
    sc = libc.syscall
    sc.restype = ctypes.c_long
    L = ctypes.c_long
    abi = sc(L(444), None, L(0), L(1))
    if abi < 4:
        die("Landlock network rules are not available (ABI %d): refusing to run unconfined" % abi)
    BIND_TCP = 1
    scoped = 3 if abi >= 6 else 0  # abstract unix sockets | signals
    attr = struct.pack("QQQ", 0, BIND_TCP, scoped) if abi >= 6 else struct.pack("QQ", 0, BIND_TCP)
    buf = ctypes.create_string_buffer(attr, len(attr))
    fd = sc(L(444), buf, L(len(attr)), L(0))
    if fd < 0:
        die("landlock_create_ruleset failed: errno %d" % ctypes.get_errno())
    for port in [0] + list(range(lo, hi + 1)):
        rule = ctypes.create_string_buffer(struct.pack("QQ", BIND_TCP, port), 16)
        if sc(L(445), L(fd), L(2), rule, L(0)) != 0:
            die("landlock_add_rule failed: errno %d" % ctypes.get_errno())
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS (runc set it already)
        die("no_new_privs failed")
    if sc(L(446), L(fd), L(0)) != 0:
        die("landlock_restrict_self failed: errno %d" % ctypes.get_errno())
    os.close(fd)
    os.execv(prog[0], prog)

main()
`;

/** argv that runs `program` confined to the port range [firstPort, firstPort + span). */
export function confinedArgv(python: string, firstPort: number, span: number, program: string[]): string[] {
  if (
    !Number.isInteger(firstPort) ||
    !Number.isInteger(span) ||
    firstPort < 1 ||
    span < 1 ||
    firstPort + span - 1 > 65535
  )
    throw new ClawkeepError("invalid_request", `bad port range ${firstPort}+${span}`);
  if (program.length === 0) throw new ClawkeepError("invalid_request", "nothing to run");
  return [
    python,
    "-I",
    "-S",
    CONFINE_PATH,
    String(firstPort),
    String(firstPort + span - 1),
    "--",
    ...program,
  ];
}
