import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { buildTinyModel } from "../gguf/tiny-model.ts";
import { ModelServerError, type ModelServerFailure } from "./errors.ts";
import { ModelRegistry, parseModelId } from "./registry.ts";
import { verifyModelFile } from "./verify.ts";

const dir = await mkdtemp(join(tmpdir(), "clawkeep-models-"));
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

test("register, list, get, verify and remove, stored atomically as models.json", async () => {
  const regDir = join(dir, "registry");
  const reg = new ModelRegistry(regDir);
  assert.deepEqual(await reg.list(), [], "a missing file is an empty registry");
  const now = new Date("2026-11-28T12:00:00Z");
  const entry = await reg.register(
    { id: "tiny", path: modelPath, sha256: modelSha, size: model.length },
    { now },
  );
  assert.deepEqual(entry, {
    id: "tiny",
    path: modelPath,
    sha256: modelSha,
    size: model.length,
    registeredAt: now.toISOString(),
  });
  // Without pins, they are measured.
  const measured = await reg.register({ id: "alpha", path: modelPath });
  assert.equal(measured.sha256, modelSha);
  assert.deepEqual(
    (await reg.list()).map((m) => m.id),
    ["alpha", "tiny"],
  );
  assert.equal((await reg.get("tiny")).path, modelPath);
  assert.equal((await reg.verify("tiny")).gguf.version, 3);

  const file = JSON.parse(await readFile(join(regDir, "models.json"), "utf8"));
  assert.equal(file.version, 1);
  assert.equal(file.models.length, 2);
  assert.equal((await stat(join(regDir, "models.json"))).mode & 0o777, 0o600);
  assert.deepEqual(await readdir(regDir), ["models.json"], "no temporary files left");

  // Same again: idempotent. Another file under the same id: refused.
  assert.deepEqual(await reg.register({ id: "tiny", path: modelPath }, { now }), entry);
  const other = join(dir, "other.gguf");
  await writeFile(other, buildTinyModel({ seed: 9 }));
  await assert.rejects(
    reg.register({ id: "tiny", path: other }),
    fails("already_registered", /already registered/),
  );

  assert.equal(await reg.remove("alpha"), true);
  assert.equal(await reg.remove("alpha"), false);
  await assert.rejects(reg.get("alpha"), fails("not_registered", /no model is registered as 'alpha'/));
  // A second registry object on the same directory sees the same list.
  assert.deepEqual(
    (await new ModelRegistry(regDir).list()).map((m) => m.id),
    ["tiny"],
  );
});

test("registering checks the file against the given pins", async () => {
  const reg = new ModelRegistry(join(dir, "pins"));
  await assert.rejects(
    reg.register({ id: "bad", path: modelPath, sha256: "0".repeat(64) }),
    fails("model_corrupt", /expected 0{64}/),
  );
  await assert.rejects(
    reg.register({ id: "bad", path: modelPath, sha256: "xyz" }),
    fails("invalid_request", /SHA-256/),
  );
  await assert.rejects(
    reg.register({ id: "bad", path: join(dir, "missing.gguf") }),
    fails("model_missing", /does not exist/),
  );
  assert.deepEqual(await reg.list(), [], "nothing was registered");
});

test("verify refuses a registered file that was replaced or damaged since", async () => {
  const reg = new ModelRegistry(join(dir, "replaced"));
  const path = join(dir, "replaced.gguf");
  await writeFile(path, model);
  await reg.register({ id: "m", path });
  await writeFile(`${path}.new`, buildTinyModel({ seed: 3 }));
  await rename(`${path}.new`, path); // same size, other weights
  await assert.rejects(
    reg.verify("m"),
    fails("model_corrupt", /replaced\.gguf has SHA-256 .* the file is corrupt or was replaced/),
  );
  await rm(path);
  await assert.rejects(reg.verify("m"), fails("model_missing", /replaced\.gguf does not exist/));
});

test("concurrent registrations are serialized: none is lost", async () => {
  const reg = new ModelRegistry(join(dir, "concurrent"));
  await Promise.all(
    ["m1", "m2", "m3", "m4"].map((id) => reg.register({ id, path: modelPath, sha256: modelSha })),
  );
  assert.deepEqual(
    (await reg.list()).map((m) => m.id),
    ["m1", "m2", "m3", "m4"],
  );
});

test("a damaged registry file is reported, not silently emptied", async () => {
  const regDir = join(dir, "broken");
  const reg = new ModelRegistry(regDir);
  await reg.register({ id: "m", path: modelPath, sha256: modelSha });
  await writeFile(join(regDir, "models.json"), '{"version": 1, "models": [{"id": 3}]}');
  await assert.rejects(reg.list(), fails("registry_corrupt", /models\.json is not a valid registry file/));
  await writeFile(join(regDir, "models.json"), "{not json");
  await assert.rejects(reg.get("m"), fails("registry_corrupt", /models\.json/));
});
