import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { GgufFormatError, readGgufInfo } from "./header.ts";
import { buildTinyModel, tinyVocab, writeTinyModel } from "./tiny-model.ts";
import { toHalf } from "./writer.ts";

const dir = await mkdtemp(join(tmpdir(), "clawkeep-gguf-"));
after(() => rm(dir, { recursive: true, force: true }));

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

test("the tiny model is deterministic: same options, same bytes; another seed, other bytes", () => {
  const a = buildTinyModel();
  const b = buildTinyModel();
  const c = buildTinyModel({ seed: 2 });
  assert.equal(sha(a), sha(b));
  assert.notEqual(sha(a), sha(c));
  assert.equal(a.length, c.length);
  assert.ok(a.length < 1_500_000, `tiny model is ${a.length} bytes`);
});

test("the tiny model is a GGUF v3 llama model with a chat template, and exactly as long as its tensors", async () => {
  const path = join(dir, "tiny.gguf");
  const size = await writeTinyModel(path);
  assert.equal((await stat(path)).size, size);
  const info = await readGgufInfo(path);
  assert.equal(info.version, 3);
  assert.equal(info.architecture, "llama");
  assert.equal(info.name, "clawkeep-tiny");
  assert.equal(info.contextLength, 32768);
  assert.equal(info.hasChatTemplate, true);
  assert.equal(info.tensorCount, 1 + 9 + 2);
  assert.ok(info.requiredSize <= size && size - info.requiredSize < 32, `${info.requiredSize} vs ${size}`);
});

test("the vocab has control tokens, all 256 byte tokens, and pieces scored by merge order", () => {
  const v = tinyVocab();
  assert.deepEqual(v.tokens.slice(0, 5), ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]);
  assert.equal(v.tokens[5], "<0x00>");
  assert.equal(v.tokens[260], "<0xFF>");
  assert.equal(new Set(v.tokens).size, v.tokens.length, "no duplicate tokens");
  const first = v.tokens.indexOf("\u2581a");
  const later = v.tokens.indexOf("\u2581the");
  assert.ok(first > 0 && later > first && v.scores[first]! > v.scores[later]!);
});

test("toHalf rounds to IEEE half precision", () => {
  assert.equal(toHalf(1), 0x3c00);
  assert.equal(toHalf(-2), 0xc000);
  assert.equal(toHalf(0.1), 0x2e66);
  assert.equal(toHalf(65504), 0x7bff);
  assert.equal(toHalf(1e6), 0x7c00);
  assert.equal(toHalf(Number.POSITIVE_INFINITY), 0x7c00);
  assert.equal(toHalf(2 ** -24), 0x0001, "smallest subnormal");
  assert.equal(toHalf(2 ** -26), 0);
  assert.equal(toHalf(-0), 0x8000);
  assert.equal(toHalf(Number.NaN) & 0x7c00, 0x7c00);
});

test("damaged files are refused with the file and the fault named", async () => {
  const good = buildTinyModel();
  const cases: Array<[string, Buffer, RegExp]> = [
    [
      "magic",
      Buffer.concat([Buffer.from("GGML"), good.subarray(4)]),
      /is not a GGUF model: it starts with "GGML"/,
    ],
    [
      "version",
      Buffer.concat([good.subarray(0, 4), Buffer.from([7, 0, 0, 0]), good.subarray(8)]),
      /GGUF version 7/,
    ],
    ["cut-in-metadata", good.subarray(0, 5000), /is truncated/],
    [
      "cut-in-weights",
      good.subarray(0, good.length - 1000),
      /is truncated: its tensors need \d+ bytes, the file has/,
    ],
    ["four-bytes", Buffer.from("GGUF"), /only 4 bytes/],
  ];
  for (const [name, bytes, pattern] of cases) {
    const path = join(dir, `${name}.gguf`);
    await writeFile(path, bytes);
    await assert.rejects(readGgufInfo(path), (err: unknown) => {
      assert.ok(err instanceof GgufFormatError, `${name}: ${String(err)}`);
      assert.match(err.message, pattern, name);
      assert.ok(err.message.includes(path), `${name}: message names the file`);
      return true;
    });
  }
  // Control: the undamaged bytes pass the same check.
  const path = join(dir, "control.gguf");
  await writeFile(path, good);
  assert.equal((await readGgufInfo(path)).version, 3);
});
