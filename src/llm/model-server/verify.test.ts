import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { buildTinyModel } from "../gguf/tiny-model.ts";
import { ModelServerError, type ModelServerFailure } from "./errors.ts";
import { parseModelId, verifyModelFile } from "./verify.ts";

const dir = await mkdtemp(join(tmpdir(), "clawkeep-verify-"));
after(() => rm(dir, { recursive: true, force: true }));

const model = buildTinyModel();
const modelSha = createHash("sha256").update(model).digest("hex");
const modelPath = join(dir, "tiny.gguf");
await writeFile(modelPath, model);

const fails = (reason: ModelServerFailure, pattern: RegExp) => (err: unknown) => {
  assert.ok(err instanceof ModelServerError, String(err));
  assert.equal(err.reason, reason, err.message);
  assert.match(err.message, pattern);
  return true;
};

test("verifyModelFile accepts a good file and measures it", async () => {
  const v = await verifyModelFile(modelPath, { size: model.length, sha256: modelSha.toUpperCase() });
  assert.equal(v.size, model.length);
  assert.equal(v.sha256, modelSha);
  assert.equal(v.gguf.architecture, "llama");
  const quick = await verifyModelFile(modelPath, {}, { skipChecksum: true });
  assert.equal(quick.sha256, undefined);
});

test("verifyModelFile names the file and the fault: missing, directory, size, magic, checksum", async () => {
  await assert.rejects(
    verifyModelFile(join(dir, "nope.gguf")),
    fails("model_missing", /nope\.gguf does not exist/),
  );
  await assert.rejects(verifyModelFile(dir), fails("model_missing", /is not a regular file/));
  await assert.rejects(
    verifyModelFile(modelPath, { size: model.length + 1 }),
    fails("model_corrupt", new RegExp(`tiny\\.gguf is ${model.length} bytes, expected ${model.length + 1}`)),
  );
  const junk = join(dir, "junk.gguf");
  await writeFile(junk, "this is not a model at all, just text");
  await assert.rejects(verifyModelFile(junk), fails("model_corrupt", /junk\.gguf is not a GGUF model/));
  const flipped = Buffer.from(model);
  flipped[flipped.length - 100]! ^= 0xff; // a weight byte: the header still parses
  const damaged = join(dir, "flipped.gguf");
  await writeFile(damaged, flipped);
  await assert.rejects(
    verifyModelFile(damaged, { sha256: modelSha }),
    fails(
      "model_corrupt",
      /flipped\.gguf has SHA-256 [0-9a-f]{64}, expected [0-9a-f]{64}: the file is corrupt/,
    ),
  );
  // Control: without the pin, the same damaged file passes the structural checks.
  assert.equal((await verifyModelFile(damaged)).size, model.length);
  await assert.rejects(
    verifyModelFile("relative/model.gguf"),
    fails("invalid_request", /absolute file path/),
  );
});

test("model ids are validated", () => {
  for (const ok of ["qwen2.5-0.5b-instruct-q4_k_m", "tiny", "a"]) assert.equal(parseModelId(ok), ok);
  for (const bad of ["", "Qwen", "../x", "a/b", "-x", "a b", "x".repeat(65), "a..b"]) {
    assert.throws(() => parseModelId(bad), fails("invalid_request", /model id/));
  }
});
