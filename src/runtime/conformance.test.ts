import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Secret } from "../core/secret.ts";
import { execFile } from "../lib/exec.ts";
import { secretsOnDisk } from "./conformance.ts";

const secrets = {
  gatewayToken: new Secret("gw-token-0123456789"),
  llmApiKey: new Secret("llm-key-9876543210"),
};

test("the secrets scan finds a token in a nested file, skips FIFOs and links, and proves itself with a marker", async () => {
  const dir = await mkdtemp(join(tmpdir(), "ck-conf-scan-"));
  try {
    await mkdir(join(dir, "a", "b"), { recursive: true });
    await writeFile(join(dir, "a", "b", "config.json"), `{"token":"${secrets.gatewayToken.reveal()}"}`);
    await writeFile(join(dir, "clean.txt"), "nothing here");
    await execFile(["mkfifo", join(dir, "a", "fifo")]);
    const outside = await mkdtemp(join(tmpdir(), "ck-conf-out-"));
    await writeFile(join(outside, "key"), secrets.llmApiKey.reveal());
    await symlink(outside, join(dir, "link"));
    try {
      const found = await secretsOnDisk([join(dir, "missing"), dir], secrets, "t");
      assert.deepEqual(found.hits, [`gateway token in ${join(dir, "a", "b", "config.json")}`]);
      assert.equal(found.control, true, "the planted marker is found");
      // Control: without the leaking file the same scan finds nothing (and the marker is gone again).
      await rm(join(dir, "a", "b", "config.json"));
      assert.deepEqual(await secretsOnDisk([dir], secrets, "t"), { hits: [], control: true });
      assert.deepEqual((await readdir(dir)).sort(), ["a", "clean.txt", "link"]);
    } finally {
      await rm(outside, { recursive: true, force: true });
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
