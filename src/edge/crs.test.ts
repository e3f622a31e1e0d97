import assert from "node:assert/strict";
import { stat } from "node:fs/promises";
import { test } from "node:test";
import { execFile } from "../lib/exec.ts";
import {
  type CrsFile,
  type CrsItem,
  crsSetup,
  foldLowercase,
  guard,
  inlineSettings,
  keepParanoiaLevel1,
  lowercaseFoldable,
  mergeRegexRules,
  parseCrs,
  readCrsFiles,
  readLevel1Score,
  renderCrs,
  stockCrs,
  testFirst,
  tuneCrs,
  unreachable,
} from "./crs.ts";
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

test("an unreadable rule leaves the set untuned", () => {
  const broken = {
    ...SYNTHETIC,
    text: SYNTHETIC.text.replace('SecRule ARGS "@rx a"', "SecRule ARGS @rx-unquoted"),
  };
  const t = tuneCrs([broken], "/rules");
  assert.equal(t.tuned, false);
  assert.match(t.untunedBecause ?? "", /could not be read/);
  assert.match(t.text, /id:900990/, "the full setup comes with an untuned set");
});

test("stockCrs brings the setup, and no second 901340 when REQUEST-901 has its own", () => {
  const init = {
    name: "REQUEST-901-INITIALIZATION.conf",
    text: 'SecRule REQBODY_PROCESSOR "!@rx x" "id:901340,phase:1,pass"',
  };
  assert.equal(stockCrs([SYNTHETIC], "/rules").match(/id:901340/g)?.length, 1);
  assert.equal(stockCrs([SYNTHETIC, init], "/rules").match(/id:901340/g)?.length, 1);
  assert.match(
    stockCrs([SYNTHETIC], "/rules"),
    /setvar:'tx\.allowed_methods=GET HEAD POST OPTIONS PUT PATCH DELETE'/,
  );
});

const rule = (text: string): CrsItem & { kind: "rule" } => {
  const [it] = parseCrs(text);
  assert.equal(it?.kind, "rule");
  return it as CrsItem & { kind: "rule" };
};

test("rule text parses into rules, chains and markers and renders back to the same rules", () => {
  const text = [
    "# a comment",
    'SecRule REQUEST_METHOD "@rx ^(?:GET|HEAD)$" \\',
    "    \"id:920170,phase:2,block,t:none,msg:'GET, or HEAD, with a body',chain\"",
    '    SecRule REQUEST_HEADERS:Content-Length "!@rx ^0?$" "t:none,setvar:\'tx.anomaly_score_pl1=+5\'"',
    'SecRule ARGS "@rx a\\"b" "id:1,phase:2,block"',
    'SecAction "id:2,phase:1,pass,nolog"',
    'SecMarker "END-X"',
    'SecComponentSignature "OWASP_CRS/3.3.4"',
  ].join("\n");
  const items = parseCrs(text);
  assert.deepEqual(
    items.map((i) => (i.kind === "rule" ? `rule ${i.id} ${i.links.length}` : i.kind)),
    ["rule 920170 2", "rule 1 1", "rule 2 1", "marker", "raw"],
  );
  const chain = items[0] as CrsItem & { kind: "rule" };
  assert.deepEqual(chain.links[0]!.actions, [
    "id:920170",
    "phase:2",
    "block",
    "t:none",
    "msg:'GET, or HEAD, with a body'",
    "chain",
  ]);
  assert.equal((items[1] as CrsItem & { kind: "rule" }).links[0]!.operator, '@rx a\\"b');
  assert.deepEqual(parseCrs(renderCrs(items)), items);
  assert.throws(() => parseCrs('SecRule ARGS "@rx a" "id:3,chain"'), /ends inside a chain/);
});

test("settings read through macros are written into the rules; other macros stay", () => {
  const out = inlineSettings(
    "SecRule REQUEST_METHOD \"!@within %{tx.allowed_methods}\" \"setvar:'tx.anomaly_score_pl1=+%{TX.CRITICAL_ANOMALY_SCORE}',logdata:'%{tx.0} %{TX.ANOMALY_SCORE}'\"",
  );
  assert.match(out, /!@within GET HEAD POST OPTIONS PUT PATCH DELETE"/);
  assert.match(out, /anomaly_score_pl1=\+5'/);
  assert.match(out, /logdata:'%\{tx\.0\} %\{TX\.ANOMALY_SCORE\}'/);
});

test("a rule that can never match is found (control: the same rule when its condition can hold)", () => {
  const limit = rule(
    'SecRule &TX:MAX_NUM_ARGS "@eq 1" "id:920380,phase:2,block,chain"\n  SecRule &ARGS "@gt %{tx.max_num_args}" "t:none"',
  );
  assert.match(unreachable(limit, [], false) ?? "", /MAX_NUM_ARGS is never set/);
  assert.equal(unreachable(limit, ["max_num_args"], false), null);
  assert.equal(unreachable(limit, ["max_*"], false), null, "a setvar with a macro in the name may set it");
  const pl2 = rule('SecRule TX:PARANOIA_LEVEL "@ge 2" "id:949061,phase:2,pass,nolog"');
  assert.match(unreachable(pl2, [], false) ?? "", /paranoia level is 1/);
  assert.equal(
    unreachable(rule('SecRule TX:PARANOIA_LEVEL "@ge 1" "id:949060,phase:2,pass"'), [], false),
    null,
  );
  const reput = rule('SecRule IP:REPUT_BLOCK_FLAG "@eq 1" "id:949100,phase:2,deny"');
  assert.match(unreachable(reput, [], false) ?? "", /persistent collection/);
  assert.equal(unreachable(reput, [], true), null);
  assert.equal(unreachable(rule('SecRule ARGS "@rx a" "id:1,phase:2,block"'), [], false), null);
});

test("testFirst moves a rarely true link to the front; metadata stays first, the score last", () => {
  const shipped = rule(
    [
      "SecRule REQUEST_METHOD \"@rx ^(?:GET|HEAD)$\" \"id:920170,phase:2,block,t:none,msg:'GET with body',severity:'CRITICAL',chain\"",
      '    SecRule REQUEST_HEADERS:Content-Length "!@rx ^0?$" "t:none,t:trim,setvar:\'tx.anomaly_score_pl1=+5\'"',
    ].join("\n"),
  );
  const out = testFirst(shipped, 1) as CrsItem & { kind: "rule" };
  assert.equal(out.links[0]!.variables, "REQUEST_HEADERS:Content-Length");
  assert.equal(out.links[0]!.operator, "!@rx ^0?$");
  assert.deepEqual(out.links[0]!.actions, [
    "id:920170",
    "phase:2",
    "block",
    "t:none",
    "t:trim",
    "msg:'GET with body'",
    "severity:'CRITICAL'",
    "chain",
  ]);
  assert.equal(out.links[1]!.variables, "REQUEST_METHOD");
  assert.deepEqual(out.links[1]!.actions, ["t:none", "setvar:'tx.anomaly_score_pl1=+5'"]);
  // Control: a first link that stores something for the next one is not independent.
  const dependent = rule(
    [
      'SecRule REQUEST_BASENAME "@rx \\.([^.]+)$" "id:920440,phase:2,block,capture,setvar:\'tx.extension=.%{tx.1}/\',chain"',
      '    SecRule TX:EXTENSION "@within .bak/" "setvar:\'tx.anomaly_score_pl1=+5\'"',
    ].join("\n"),
  );
  assert.equal(testFirst(dependent, 1), null);
});

test("guard puts a cheap test with the rule's metadata in front of its condition", () => {
  const r = rule(
    "SecRule TX:/X_/ \"!@rx ^a$\" \"id:922110,phase:2,block,capture,t:none,t:lowercase,msg:'m',setvar:'tx.anomaly_score_pl1=+5'\"",
  );
  const g = guard(r, "&MULTIPART_PART_HEADERS", "@gt 0") as CrsItem & { kind: "rule" };
  assert.deepEqual(renderCrs([g]).split("\n"), [
    'SecRule &MULTIPART_PART_HEADERS "@gt 0" "id:922110,phase:2,block,msg:\'m\',chain"',
    '    SecRule TX:/X_/ "!@rx ^a$" "capture,t:none,t:lowercase,setvar:\'tx.anomaly_score_pl1=+5\'"',
  ]);
});

const xss = (id: string, pattern: string, extra = "", score = 5) =>
  `SecRule ARGS|REQUEST_COOKIES "@rx ${pattern}" "id:${id},phase:2,block,capture,t:none,t:urlDecodeUni,msg:'XSS ${id}',tag:'paranoia-level/1',ver:'OWASP_CRS/3.3.4',severity:'CRITICAL'${extra},setvar:'tx.xss_score=+${score}',setvar:'tx.anomaly_score_pl1=+${score}'"`;

test("regex rules that inspect the same values the same way and each block alone are merged into one", () => {
  const items = parseCrs(
    [
      xss("941110", "(?i)<script"),
      xss("941120", "on\\w+="),
      'SecRule ARGS "@rx x" "id:941130,phase:2,pass,nolog"',
      xss("941140", "(a)\\1"),
      xss("941150", "warn", "", 3),
      xss("941160", "<svg", ",multiMatch"),
      xss("941170", "javascript:"),
    ].join("\n"),
  );
  const { items: out, merged } = mergeRegexRules(items, 5);
  assert.deepEqual(merged, { "941110": ["941110", "941120", "941170"] });
  assert.deepEqual(
    out.map((i) => (i as CrsItem & { kind: "rule" }).id),
    ["941110", "941130", "941140", "941150", "941160"],
    "a backreference, a score below the threshold and other actions stay apart",
  );
  const m = (out[0] as CrsItem & { kind: "rule" }).links[0]!;
  assert.equal(m.operator, "@rx (?:(?i)<script)|(?:on\\w+=)|(?:javascript:)");
  assert.ok(m.actions.includes("msg:'CRS 941110 941120 941170 (merged): XSS 941110'"));
  assert.ok(m.actions.includes("setvar:'tx.anomaly_score_pl1=+5'"));
  // Different transformations are different groups; a long pattern is merged in chunks.
  const other = parseCrs([xss("1", "a"), xss("2", "b").replace("t:urlDecodeUni", "t:lowercase")].join("\n"));
  assert.deepEqual(mergeRegexRules(other, 5).merged, {});
  const long = "x".repeat(3000);
  const chunks = mergeRegexRules(
    parseCrs([xss("1", long), xss("2", long), xss("3", long), xss("4", "y")].join("\n")),
    5,
  );
  assert.deepEqual(chunks.merged, { "3": ["3", "4"] }, "each merged pattern stays under the size limit");
});

test("lowercaseFoldable: (?i) on the value decides as the pattern on the lower-cased value", () => {
  for (const p of [
    "java\\.lang\\.(?:runtime|processbuilder)",
    "^[a-z0-9_-]+$",
    "[^a-zA-Z]",
    "[\\x20-\\x7e]",
    "[!-~]",
    "\\x61\\d\\W\\b",
    "(?i:abc)",
    "[\\-\\x5c]",
    "[[:alpha:]]x",
  ]) {
    assert.equal(lowercaseFoldable(p), true, p);
  }
  // An upper-case letter never matches a lower-cased value but would match with (?i); so would a
  // class that holds an upper-case letter without its lower-case one, or escapes it cannot follow.
  for (const p of [
    "originating-IP",
    "\\x41",
    "[^A-Z]",
    "[\\x00-\\x50]",
    "[0-m]",
    "(?-i:x)",
    "a\\Qb\\E",
    "\\101",
    "[[:upper:]]",
    "\\p{Lu}",
    "[\\d-z]",
  ]) {
    assert.equal(lowercaseFoldable(p), false, p);
  }
});

test("foldLowercase drops a final t:lowercase where the operator ignores case (control: where it does not)", () => {
  const one = (text: string) => renderCrs([foldLowercase(rule(text))]);
  assert.equal(
    one('SecRule ARGS "@rx java\\.lang" "id:1,phase:2,block,t:none,t:lowercase"'),
    'SecRule ARGS "@rx (?i:java\\.lang)" "id:1,phase:2,block,t:none"',
  );
  assert.equal(
    one('SecRule ARGS "@pmFromFile /r/x.data" "id:1,phase:2,block,t:none,t:lowercase,t:removeNulls"'),
    'SecRule ARGS "@pmFromFile /r/x.data" "id:1,phase:2,block,t:none,t:removeNulls"',
  );
  for (const kept of [
    'SecRule ARGS "@rx originating-IP" "id:1,phase:2,block,t:none,t:lowercase"',
    'SecRule ARGS "@pm a" "id:1,phase:2,block,t:lowercase,t:urlDecode"',
    'SecRule ARGS "@within a b" "id:1,phase:2,block,t:lowercase"',
    'SecRule ARGS "@rx (a)" "id:1,phase:2,block,capture,t:lowercase,setvar:\'tx.x=%{tx.1}\'"',
  ]) {
    assert.equal(one(kept), kept);
  }
  const chained =
    'SecRule ARGS "@rx (a)" "id:1,phase:2,block,capture,t:lowercase,chain"\n    SecRule TX:1 "@rx a" "t:none"';
  assert.equal(
    renderCrs([foldLowercase(parseCrs(chained)[0]!)]),
    chained,
    "a capture a chain reads keeps its case",
  );
});

test("readLevel1Score lets 949110 read the level-1 score and drops 949060 (control: unchanged when not as shipped)", () => {
  const shipped = [
    'SecRule TX:PARANOIA_LEVEL "@ge 1" "id:949060,phase:2,pass,t:none,nolog,setvar:\'tx.anomaly_score=+%{tx.anomaly_score_pl1}\'"',
    "SecRule TX:ANOMALY_SCORE \"@ge 5\" \"id:949110,phase:2,deny,t:none,log,msg:'Inbound Anomaly Score Exceeded (Total Score: %{TX.ANOMALY_SCORE})',setvar:'tx.inbound_anomaly_score=%{tx.anomaly_score}'\"",
  ];
  const out = readLevel1Score(parseCrs(shipped.join("\n")));
  assert.deepEqual(out.dropped, ["949060"]);
  assert.equal(
    renderCrs(out.items),
    "SecRule TX:ANOMALY_SCORE_PL1 \"@ge 5\" \"id:949110,phase:2,deny,t:none,log,msg:'Inbound Anomaly Score Exceeded (Total Score: %{tx.anomaly_score_pl1})',setvar:'tx.inbound_anomaly_score=%{tx.anomaly_score_pl1}',setvar:'tx.anomaly_score=%{tx.anomaly_score_pl1}'\"",
  );
  const other = parseCrs(shipped[1]!);
  assert.deepEqual(readLevel1Score(other), { items: other, dropped: [] });
});

test("the tuned Debian CRS keeps every paranoia-level-1 rule of the files it loads (merged, rewritten or provably unreachable) and nothing above", async (t) => {
  if (!(await stat(RULES).catch(() => null))) {
    t.skip(`${RULES} is missing: install modsecurity-crs (scripts/deps.sh) to check the tuning against it`);
    return;
  }
  const files = await readCrsFiles(RULES);
  const tuned = tuneCrs(files, RULES);
  assert.equal(tuned.tuned, true, `CRS ${tuned.version}: ${tuned.untunedBecause}`);
  assert.match(tuned.version ?? "", /^3\.3\./);
  for (const dropped of ["REQUEST-901-", "REQUEST-905-", "REQUEST-910-", "REQUEST-912-", "RESPONSE-"]) {
    assert.ok(
      tuned.droppedFiles.some((f) => f.startsWith(dropped)),
      dropped,
    );
    assert.ok(!tuned.keptFiles.some((f) => f.startsWith(dropped)), dropped);
  }
  // Every rule id of the kept files' level-1 part is loaded, merged into a loaded rule, or dropped
  // for a stated reason; none twice.
  const level1 = files
    .filter((f) => tuned.keptFiles.includes(f.name))
    .flatMap((f) => parseCrs(keepParanoiaLevel1(f)))
    .flatMap((i) => (i.kind === "rule" ? [i.id] : []));
  assert.ok(level1.length > 100);
  const loaded = parseCrs(tuned.text).flatMap((i) => (i.kind === "rule" ? [i.id] : []));
  assert.equal(new Set(loaded).size, loaded.length, "no id twice");
  const mergedInto = new Map(
    Object.entries(tuned.merged).flatMap(([head, ids]) => ids.map((id) => [id, head])),
  );
  const dropped = new Map(tuned.droppedRules.map((d) => [d.id, d.reason]));
  for (const id of level1) {
    const head = mergedInto.get(id);
    assert.ok(
      (loaded.includes(id) && (!head || head === id)) || (head && loaded.includes(head)) || dropped.get(id),
      `${id} is loaded, merged or dropped with a reason`,
    );
  }
  assert.ok(Object.keys(tuned.merged).length >= 3, "regex rules are merged");
  assert.deepEqual([...dropped.keys()].sort(), [
    "920250",
    "920360",
    "920370",
    "920380",
    "920390",
    "920400",
    "920410",
    "949060",
    "949061",
    "949062",
    "949063",
    "949100",
  ]);
  assert.equal(tuned.text.match(/tag:'paranoia-level\/[234]'/g), null, "no higher-level rule stays");
  assert.doesNotMatch(tuned.text, /EXECUTING_PARANOIA_LEVEL "@lt [1234]"/);
  for (const id of ["942100", "941100", "930100", "932100", "913100", "920350", "949110"]) {
    assert.match(tuned.text, new RegExp(`id:${id}\\b`), id);
  }
  // What made the shipped set slow is gone: settings read through macros (an @rx with one is
  // compiled per request), TX:/regex/ variables outside a guarded chain, a first link that every
  // header name matches.
  assert.doesNotMatch(
    tuned.text,
    /%\{tx\.(?:critical_anomaly_score|allowed_[a-z_]+|restricted_[a-z]+|inbound_anomaly_score_threshold)\}/i,
  );
  assert.deepEqual(
    [...tuned.text.matchAll(/^SecRule (TX:\/[^ ]*)/gm)].map((m) => m[1]),
    [],
    "a TX:/regex/ variable only in a chained link",
  );
  assert.doesNotMatch(tuned.text, /SecRule REQUEST_HEADERS_NAMES "@rx \^\.\*\$"/);
  assert.doesNotMatch(tuned.text, /id:900990/, "no setting is read, so no setup action runs per request");
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

test("every pattern of the tuned set compiles with PCRE2 (libmodsecurity 3.0.9 silently never matches one that does not)", async (t) => {
  if (!(await stat(RULES).catch(() => null))) {
    t.skip(`${RULES} is missing: install modsecurity-crs (scripts/deps.sh)`);
    return;
  }
  const grepP = (pattern: string) =>
    execFile(["grep", "-P", "-e", pattern, "/dev/null"], { env: { ...process.env, LC_ALL: "C" } }).then(
      () => 0,
      (err: { exitCode?: number | null }) => err.exitCode ?? -1,
    );
  if ((await grepP("a")) !== 1) {
    t.skip("grep -P (PCRE2) is not available to compile the patterns");
    return;
  }
  // Control: what libmodsecurity would silently accept is refused here.
  assert.equal(await grepP("a(b"), 2);
  assert.equal(await grepP(Array.from({ length: 2000 }, (_v, i) => `(?:a${i}(?:b|c)+x)`).join("|")), 2);
  const tuned = tuneCrs(await readCrsFiles(RULES), RULES);
  const patterns = parseCrs(tuned.text)
    .flatMap((i) => (i.kind === "rule" ? i.links : []))
    .flatMap((l) => {
      const m = /^!?@rx (.*)$/s.exec(l.operator ?? "");
      return m ? [m[1]!.replace(/\\"/g, '"')] : [];
    });
  assert.ok(patterns.length > 50);
  const failed: string[] = [];
  for (const p of patterns) if ((await grepP(p)) !== 1) failed.push(p.slice(0, 120));
  assert.deepEqual(failed, []);
});
