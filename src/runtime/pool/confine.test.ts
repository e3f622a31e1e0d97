import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { CONFINE_PATH, CONFINE_SCRIPT, confinedArgv } from "./confine.ts";

test("the launcher runs the program after the port range, and refuses bad ranges", () => {
  assert.deepEqual(confinedArgv("/usr/bin/python3", 19000, 200, ["/usr/bin/tini", "--", "node"]), [
    "/usr/bin/python3",
    "-I",
    "-S",
    CONFINE_PATH,
    "19000",
    "19199",
    "--",
    "/usr/bin/tini",
    "--",
    "node",
  ]);
  assert.throws(() => confinedArgv("p", 65500, 100, ["x"]), /bad port range/);
  assert.throws(() => confinedArgv("p", 0, 1, ["x"]), /bad port range/);
  assert.throws(() => confinedArgv("p", 19000, 1, []), /nothing to run/);
});

const PYTHON = ["/usr/bin/python3", "python3"].find((p) => spawnSync(p, ["-c", ""]).status === 0);

/**
 * Runs the real launcher text with python3, the answer of the kernel's Landlock ABI query
 * (landlock_create_ruleset with LANDLOCK_CREATE_RULESET_VERSION) replaced by `abi` when given:
 * a prelude wraps ctypes' libc so that this one syscall returns the fake answer and every other
 * call reaches the kernel. `abi` undefined: the prelude is there but passes everything through.
 */
function runLauncher(program: string[], abi?: number) {
  const prelude = `
import ctypes
_real_cdll = ctypes.CDLL
FAKE_ABI = ${abi === undefined ? "None" : String(abi)}
class _Syscall:
    def __init__(self, real):
        self._real = real
    def __setattr__(self, k, v):
        if k == "_real":
            object.__setattr__(self, k, v)
        else:
            setattr(self._real, k, v)
    def __call__(self, *args):
        if FAKE_ABI is not None and args[0].value == 444 and args[1] is None and args[3].value == 1:
            return FAKE_ABI
        return self._real(*args)
class _Libc:
    def __init__(self, real):
        self._real = real
        self.syscall = _Syscall(real.syscall)
    def __getattr__(self, k):
        return getattr(self._real, k)
ctypes.CDLL = lambda *a, **k: _Libc(_real_cdll(*a, **k))
`;
  return spawnSync(
    PYTHON!,
    ["-I", "-S", "-c", `${prelude}\n${CONFINE_SCRIPT}`, "19000", "19199", "--", ...program],
    {
      encoding: "utf8",
    },
  );
}

/** Whether this kernel has Landlock: the LSM list, or where securityfs is not mounted, the ABI query. */
function landlockAbi(): number | undefined {
  try {
    if (!readFileSync("/sys/kernel/security/lsm", "utf8").split(",").includes("landlock")) return undefined;
  } catch {
    // securityfs not mounted: ask the kernel below.
  }
  const r = spawnSync(
    PYTHON!,
    [
      "-c",
      "import ctypes;L=ctypes.c_long;s=ctypes.CDLL(None).syscall;s.restype=L;print(s(L(444),None,L(0),L(1)))",
    ],
    { encoding: "utf8" },
  );
  const abi = Number(r.stdout.trim());
  return Number.isInteger(abi) && abi > 0 ? abi : undefined;
}

const abi = PYTHON ? landlockAbi() : undefined;
const skip = !PYTHON
  ? "no python3 here: the launcher cannot be run"
  : abi === undefined
    ? "this kernel has no Landlock (not in /sys/kernel/security/lsm, ABI query fails): the launcher cannot run anything here"
    : abi < 4
      ? `this kernel's Landlock is ABI ${abi}, without network rules: the launcher refuses everything here`
      : undefined;
if (skip) process.stderr.write(`# SKIP confine launcher tests: ${skip}\n`);

test("the launcher fails closed: a kernel without Landlock network rules gets no program run", {
  skip,
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), "clawkeep-confine-"));
  try {
    // The control: on this kernel the launcher runs the program: as it is, through the prelude
    // passing everything on, and through the prelude answering with the kernel's own ABI.
    const plain = join(dir, "plain");
    const r0 = spawnSync(
      PYTHON!,
      ["-I", "-S", "-c", CONFINE_SCRIPT, "19000", "19199", "--", "/usr/bin/touch", plain],
      {
        encoding: "utf8",
      },
    );
    assert.equal(r0.status, 0, `the launcher refused on a kernel with Landlock ABI ${abi}: ${r0.stderr}`);
    assert.ok(existsSync(plain), "the control program did not run");
    for (const fake of [undefined, abi]) {
      const ran = join(dir, `control-${fake ?? "pass"}`);
      const r = runLauncher(["/usr/bin/touch", ran], fake);
      assert.equal(
        r.status,
        0,
        `the launcher refused through the prelude (ABI ${fake ?? "real"}): ${r.stderr}`,
      );
      assert.ok(existsSync(ran), "the control program did not run through the prelude");
    }
    // ABI 3 (no network rules), and a kernel whose Landlock is disabled (the query fails).
    for (const fake of [3, 1, -1]) {
      const marker = join(dir, `abi${fake}`);
      const r = runLauncher(["/usr/bin/touch", marker], fake);
      assert.equal(r.status, 70, `exit status with ABI ${fake}: ${r.status} (${r.stderr})`);
      assert.match(
        r.stderr,
        new RegExp(
          `clawkeep confine: Landlock network rules are not available \\(ABI ${fake}\\): refusing to run unconfined`,
        ),
      );
      assert.equal(existsSync(marker), false, `the program ran with ABI ${fake}`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
