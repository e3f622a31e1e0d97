import assert from "node:assert/strict";
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

test("the launcher fails closed: no Landlock network rules, no gateway", () => {
  assert.match(CONFINE_SCRIPT, /if abi < 4:\n\s+die\(/);
  assert.match(CONFINE_SCRIPT, /os\.execv\(prog\[0\], prog\)\n\nmain\(\)\n$/);
});
