import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import { volumesConformance } from "./conformance.ts";
import { PlainVolumes } from "./plain.ts";

// The encrypted implementations need root, loop devices and fscrypt: test/volumes-conformance.test.ts.
let root = "";
before(async () => {
  root = await mkdtemp(join(tmpdir(), "ck-vconf-"));
});
after(() => rm(root, { recursive: true, force: true }));

volumesConformance({
  label: "plain volumes",
  volumes: () => new PlainVolumes(join(root, "volumes")),
  tier: "premium",
  // As root, a uid other than our own proves the hand-over.
  ownerUid: process.getuid?.() === 0 ? 65534 : (process.getuid?.() ?? 0),
  encrypted: false,
});
