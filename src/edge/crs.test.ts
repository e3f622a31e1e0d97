import assert from "node:assert/strict";
import { stat } from "node:fs/promises";
import { test } from "node:test";
import { type CrsFile, crsSetup, keepParanoiaLevel1, readCrsFiles, stockCrs, tuneCrs } from "./crs.ts";
import { DEBIAN_EDGE_SYSTEM } from "./render.ts";

const RULES = DEBIAN_EDGE_SYSTEM.crsRulesDir;

const SYNTHETIC: CrsFile = {
  name: "REQUEST-999-TEST.conf",
  text: [
    'SecComponentSignature "OWASP_CRS/3.3.4"',
    'SecRule TX:EXECUTING_PARANOIA_LEVEL "@lt 1" "id:999011,phase:1,pass,nolog,skipAfter:END-REQUEST-999-TEST"',
    'SecRule ARGS "@rx a" "id:999100,phase:2,block,tag:\'paranoia-level/1\'"',
    'SecRule TX:EXECUTING_PARANOIA_LEVEL "@lt 2" "id:999013,phase:1,pass,nolog,skipAfter:END-REQUEST-999-TEST"',
    'SecRule ARGS "@rx b" "id:999200,phase:2,block,tag:\'paranoia-level/2\'"',
    'SecMarker "END-REQUEST-999-TEST"',
  ].join("\n"),
};

test("keepParanoiaLevel1 keeps level-1 rules and the end marker, drops higher levels and the level gates", () => {
  const out = keepParanoiaLevel1(SYNTHETIC);
  assert.match(out, /id:999100/);
  assert.doesNotMatch(out, /id:999200|id:999013|id:999011/);
  assert.match(out, /SecMarker "END-REQUEST-999-TEST"/);
});

test("keepParanoiaLevel1 leaves a file it does not understand unchanged", () => {
  const noEnd = { ...SYNTHETIC, text: SYNTHETIC.text.replace('SecMarker "END-REQUEST-999-TEST"', "") };
  assert.equal(keepParanoiaLevel1(noEnd), noEnd.text);
  const jumpsIntoDropped = {
    ...SYNTHETIC,
    text: SYNTHETIC.text
      .replace("id:999100,phase:2,block", "id:999100,phase:2,block,skipAfter:INNER")
      .replace("id:999200", 'id:999200"\nSecMarker "INNER"\nSecRule ARGS "@rx c" "id:999201'),
  };
  assert.equal(keepParanoiaLevel1(jumpsIntoDropped), jumpsIntoDropped.text);
});

test("an unknown CRS version is loaded untuned (REQUEST-901 included)", () => {
  const files: CrsFile[] = [
    {
      name: "REQUEST-901-INITIALIZATION.conf",
      text: 'SecComponentSignature "OWASP_CRS/4.0.0"\nSecAction "id:901001"',
    },
    {
      name: "REQUEST-905-COMMON-EXCEPTIONS.conf",
      text: 'SecRule REMOTE_ADDR "@ipMatch 127.0.0.1" "id:905100"',
    },
    SYNTHETIC,
    { name: "RESPONSE-950-DATA-LEAKAGES.conf", text: 'SecRule RESPONSE_BODY "@rx x" "id:950100"' },
  ];
  const t = tuneCrs(files, "/rules");
  assert.equal(t.tuned, false);
  assert.equal(t.version, "4.0.0");
  assert.deepEqual(t.keptFiles, ["REQUEST-901-INITIALIZATION.conf", "REQUEST-999-TEST.conf"]);
  assert.match(t.text, /id:999200/, "untuned keeps every level");
});

test("crsSetup sets CRS's defaults in one action and allows the platform API's methods", () => {
  const s = crsSetup();
  assert.equal(s.match(/^SecAction /gm)?.length, 1);
  for (const v of [
    "paranoia_level=1",
    "executing_paranoia_level=1",
    "inbound_anomaly_score_threshold=5",
    "anomaly_score=0",
  ]) {
    assert.ok(s.includes(`tx.${v}'`), v);
  }
  assert.match(s, /allowed_methods=GET HEAD POST OPTIONS PUT PATCH DELETE'/);
  assert.doesNotMatch(crsSetup({ rulesIncludeInit: true }), /id:901340/);
});

test("the tuned Debian CRS keeps every paranoia-level-1 rule of the files it loads and nothing above", async (t) => {
  if (!(await stat(RULES).catch(() => null))) {
    t.skip(`${RULES} is missing: install modsecurity-crs (scripts/deps.sh) to check the tuning against it`);
    return;
  }
  const files = await readCrsFiles(RULES);
  const tuned = tuneCrs(files, RULES);
  assert.equal(tuned.tuned, true, `CRS ${tuned.version}`);
  assert.match(tuned.version ?? "", /^3\.3\./);
  for (const dropped of ["REQUEST-901-", "REQUEST-905-", "REQUEST-910-", "REQUEST-912-", "RESPONSE-"]) {
    assert.ok(
      tuned.droppedFiles.some((f) => f.startsWith(dropped)),
      dropped,
    );
    assert.ok(!tuned.keptFiles.some((f) => f.startsWith(dropped)), dropped);
  }
  const count = (text: string, re: RegExp) => text.match(re)?.length ?? 0;
  const pl1 = /tag:'paranoia-level\/1'/g;
  const shipped = files
    .filter((f) => tuned.keptFiles.includes(f.name))
    .map((f) => f.text)
    .join("\n");
  assert.ok(count(shipped, pl1) > 100);
  assert.equal(count(tuned.text, pl1), count(shipped, pl1), "every level-1 rule stays");
  assert.equal(count(tuned.text, /tag:'paranoia-level\/[234]'/g), 0, "no higher-level rule stays");
  assert.doesNotMatch(tuned.text, /EXECUTING_PARANOIA_LEVEL "@lt [1234]"/);
  for (const id of ["942100", "941100", "930100", "932100", "913100", "920350", "949110"]) {
    assert.match(tuned.text, new RegExp(`id:${id}\\b`), id);
  }
  // Every data file a rule reads is named by an absolute path that exists.
  const dataFiles = [...tuned.text.matchAll(/@(?:pm|ipMatch)FromFile (\S+?)"/g)].map((m) => m[1]!);
  assert.ok(dataFiles.length > 5);
  for (const f of dataFiles) {
    assert.ok(f.startsWith(`${RULES}/`), f);
    assert.ok(await stat(f), f);
  }
  // Every jump lands on a marker that is still there.
  const markers = new Set([...tuned.text.matchAll(/SecMarker "?([A-Za-z0-9_-]+)/g)].map((m) => m[1]));
  for (const m of tuned.text.matchAll(/skipAfter:'?([A-Za-z0-9_-]+)/g)) assert.ok(markers.has(m[1]), m[1]);
  assert.ok(stockCrs(files, RULES).length > tuned.text.length * 2);
});
