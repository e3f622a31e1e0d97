/**
 * Tuning of the OWASP Core Rule Set (Debian's modsecurity-crs, CRS 3.3) for the edge. Pure text
 * transforms on the rules parsed as data; reading the files is the caller's one small I/O step
 * (readCrsFiles).
 *
 * Why: libmodsecurity 3.0.9 pays for every rule it visits on every request (a rule message,
 * variable copies, one string per transformation), ~4x that for a rule that matches (even one
 * that only passes), a locale call per character for `t:lowercase`, and it compiles a regular
 * expression on every request for a `TX:/regex/` variable or an `@rx` whose pattern holds a
 * macro. Measured here, the stock set costs ~10x an nginx TLS proxy. The tuned set decides every
 * request as the shipped paranoia-level-1 set does (blocked or not, same status), and drops or
 * rewrites only what cannot change a decision:
 * - files that do not apply to this edge: REQUEST-901 initialisation (its defaults are written
 *   into the rules; its IP/UA collections only serve the dropped 910/912), REQUEST-903.* (Drupal,
 *   WordPress, ... exclusion packages, off by default), REQUEST-905 (Apache's internal dummy
 *   connection and a `GET /` from localhost exemption: wrong for an edge whose clients can all be
 *   local), REQUEST-910 (IP reputation: needs block lists), REQUEST-912 (DoS: nginx's limits do
 *   it), RESPONSE-* (response bodies are not inspected: the tenant's own gateway produces them);
 * - rules above paranoia level 1 and the "executing paranoia level < 1" gates (the level is 1);
 * - rules that cannot fire with this configuration (unreachable()): a test of a TX variable that
 *   nothing sets, a paranoia level above 1, a collection that is never initialised;
 * - CRS's settings read through macros (`%{tx.critical_anomaly_score}`, `%{tx.allowed_methods}`,
 *   ...) are written into the rules as their values (inlineSettings()), so no per-request action
 *   sets them;
 * - a few rules are rewritten to equivalent forms that do not match ordinary requests on their
 *   first link or compile a regex per request (REWRITES: 920170, 920171, 920180, 920450, 922110;
 *   readLevel1Score(): 949060/949110);
 * - a final `t:lowercase` goes where the operator can ignore case itself (foldLowercase());
 * - paranoia-level-1 regex rules of one file that look at the same variables through the same
 *   transformations and each add a critical score (enough to block on its own) are merged into
 *   one rule whose pattern is the alternation of theirs (mergeRegexRules()): it matches exactly
 *   when one of them would, and any one of them blocks. The audit log then names the first
 *   rule's id with all merged ids in its message.
 * Data files referenced by rules are made absolute, since the tuned text lives elsewhere.
 * A CRS version other than 3.3.x, or a rule the parser cannot read, gives the untuned set (the
 * REQUEST-* files as shipped, REQUEST-901 included, minus the exemption files above): correct,
 * only slower.
 */
import { readdir, readFile } from "node:fs/promises";

export interface CrsFile {
  /** File name, e.g. REQUEST-942-APPLICATION-ATTACK-SQLI.conf. */
  name: string;
  text: string;
}

export interface TunedCrs {
  /** The complete CRS configuration (setup and rules), to load after the engine settings. */
  text: string;
  /** e.g. "3.3.4", or null when no signature was found. */
  version: string | null;
  tuned: boolean;
  /** Why the set is loaded as shipped (null when tuned). */
  untunedBecause: string | null;
  keptFiles: string[];
  droppedFiles: string[];
  /** Rules of the kept files' paranoia-level-1 part that are not loaded, with why. */
  droppedRules: Array<{ id: string; reason: string }>;
  /** Rule id -> the ids merged into it (itself first). */
  merged: Record<string, string[]>;
}

const DROPPED = /^(?:REQUEST-(?:901|903\.\d+|905|910|912)-|RESPONSE-)/;
const LT1_GATE =
  /^SecRule TX:EXECUTING_PARANOIA_LEVEL "@lt 1" "id:\d+,phase:\d,pass,nolog,skipAfter:[A-Z0-9-]+"\s*$/;
const LT2_GATE = /^SecRule TX:EXECUTING_PARANOIA_LEVEL "@lt 2"/;
const DATA_FILE = /(@(?:pm|ipMatch)FromFile) ([A-Za-z0-9_.-]+\.data)\b/g;

function crsVersion(files: readonly CrsFile[]): string | null {
  for (const f of files) {
    const m = /^SecComponentSignature "OWASP_CRS\/(\d+\.\d+\.\d+)"/m.exec(f.text);
    if (m) return m[1]!;
  }
  return null;
}

/** Markers a text defines, and markers its rules jump to. */
function markers(text: string): { defined: Set<string>; targets: Set<string> } {
  const defined = new Set<string>();
  const targets = new Set<string>();
  for (const m of text.matchAll(/^\s*SecMarker "?([A-Za-z0-9_-]+)"?/gm)) defined.add(m[1]!);
  for (const m of text.matchAll(/skipAfter:'?([A-Za-z0-9_-]+)/g)) targets.add(m[1]!);
  return { defined, targets };
}

/**
 * Keeps the paranoia-level-1 part of one CRS rule file: drops everything from the "@lt 2" gate to
 * the file's end marker, and the "@lt 1" gates. Returns the file unchanged when its structure is
 * not the expected one (no end marker, or a kept rule would jump to a dropped marker).
 */
export function keepParanoiaLevel1(file: CrsFile): string {
  const stem = file.name.replace(/\.conf$/, "");
  const lines = file.text.split("\n");
  const endIdx = lines.findIndex((l) => l.trim() === `SecMarker "END-${stem}"`);
  const gateIdx = lines.findIndex((l) => LT2_GATE.test(l));
  if (endIdx < 0) return file.text;
  const kept =
    gateIdx >= 0 && gateIdx < endIdx ? [...lines.slice(0, gateIdx), ...lines.slice(endIdx)] : lines;
  const out = kept.filter((l) => !LT1_GATE.test(l)).join("\n");
  const { defined, targets } = markers(out);
  for (const t of targets) if (!defined.has(t)) return file.text;
  return out;
}

// ---- rule text as data ---------------------------------------------------------------------------

/** One SecRule (variables and operator) or SecAction (both null), actions in their order. */
export interface RuleLink {
  variables: string | null;
  operator: string | null;
  actions: string[];
}

/** A rule with the rules chained to it (all links must match), a marker, or a directive kept as is. */
export type CrsItem =
  | { kind: "rule"; id: string; links: RuleLink[] }
  | { kind: "marker"; name: string }
  | { kind: "raw"; text: string };

/** Splits an action list at the commas outside single quotes. */
function splitActions(text: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === "\\" && i + 1 < text.length) {
      cur += c + text[++i];
      continue;
    }
    if (c === "'") quoted = !quoted;
    if (c === "," && !quoted) {
      out.push(cur.trim());
      cur = "";
    } else cur += c;
  }
  if (cur.trim()) out.push(cur.trim());
  return out.filter((a) => a.length > 0);
}

const QUOTED = String.raw`"((?:[^"\\]|\\.)*)"`;
const SECRULE = new RegExp(String.raw`^SecRule\s+(\S+)\s+${QUOTED}(?:\s+${QUOTED})?\s*$`, "s");
const SECACTION = new RegExp(String.raw`^SecAction\s+${QUOTED}\s*$`, "s");

/** Directives of a rule file: comments and blank lines dropped, continuation lines joined. */
function directives(text: string): string[] {
  const out: string[] = [];
  let cur = "";
  for (const line of text.split("\n")) {
    if (!cur && (!line.trim() || line.trim().startsWith("#"))) continue;
    if (/\\\s*$/.test(line)) {
      cur += `${line.replace(/\\\s*$/, "")} `;
      continue;
    }
    out.push((cur + line).trim());
    cur = "";
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

const actionName = (a: string) => a.split(":")[0]!.trim();
const hasAction = (l: RuleLink, name: string) => l.actions.some((a) => actionName(a) === name);

/**
 * Parses CRS rule text into items. Directives other than SecRule, SecAction and SecMarker are kept
 * as raw text; a SecRule or SecAction it cannot read throws (the caller then loads the set untuned).
 */
export function parseCrs(text: string): CrsItem[] {
  const items: CrsItem[] = [];
  let chain: RuleLink[] | null = null;
  for (const d of directives(text)) {
    const rule = SECRULE.exec(d);
    const action = rule ? null : SECACTION.exec(d);
    if (!rule && !action) {
      if (chain || /^Sec(?:Rule|Action)\b/.test(d)) throw new Error(`cannot read ${d.slice(0, 120)}`);
      const marker = /^SecMarker\s+"?([A-Za-z0-9_-]+)"?$/.exec(d);
      items.push(marker ? { kind: "marker", name: marker[1]! } : { kind: "raw", text: d });
      continue;
    }
    const link: RuleLink = rule
      ? { variables: rule[1]!, operator: rule[2]!, actions: splitActions(rule[3] ?? "") }
      : { variables: null, operator: null, actions: splitActions(action![1]!) };
    if (chain) chain.push(link);
    else chain = [link];
    if (hasAction(link, "chain")) continue;
    const id = /(?:^|,)\s*id:'?(\d+)/.exec(chain[0]!.actions.join(","))?.[1] ?? "";
    items.push({ kind: "rule", id, links: chain });
    chain = null;
  }
  if (chain) throw new Error("the rule text ends inside a chain");
  return items;
}

function renderLink(l: RuleLink): string {
  const actions = l.actions.join(",");
  return l.variables === null
    ? `SecAction "${actions}"`
    : `SecRule ${l.variables} "${l.operator}" "${actions}"`;
}

/** Rule text again, one directive per line (chained links indented). */
export function renderCrs(items: readonly CrsItem[]): string {
  return items
    .map((it) =>
      it.kind === "marker"
        ? `SecMarker "${it.name}"`
        : it.kind === "raw"
          ? it.text
          : it.links.map((l, i) => (i ? `    ${renderLink(l)}` : renderLink(l))).join("\n"),
    )
    .join("\n");
}

// ---- the CRS configuration -----------------------------------------------------------------------

/** HTTP methods the platform's APIs use; CRS blocks others (911100). */
export const ALLOWED_METHODS = ["GET", "HEAD", "POST", "OPTIONS", "PUT", "PATCH", "DELETE"] as const;

/**
 * CRS 3.3's settings (crs-setup.conf and REQUEST-901 defaults) as the edge uses them: the
 * defaults, except allowed methods (the platform API uses PUT/PATCH/DELETE).
 */
export const CRS_SETTINGS: Readonly<Record<string, string>> = {
  crs_setup_version: "334",
  paranoia_level: "1",
  executing_paranoia_level: "1",
  inbound_anomaly_score_threshold: "5",
  outbound_anomaly_score_threshold: "4",
  sampling_percentage: "100",
  critical_anomaly_score: "5",
  error_anomaly_score: "4",
  warning_anomaly_score: "3",
  notice_anomaly_score: "2",
  do_reput_block: "0",
  reput_block_duration: "300",
  allowed_methods: ALLOWED_METHODS.join(" "),
  allowed_request_content_type:
    "|application/x-www-form-urlencoded| |multipart/form-data| |multipart/related| |text/xml| |application/xml| |application/soap+xml| |application/json| |application/cloudevents+json| |application/cloudevents-batch+json|",
  allowed_request_content_type_charset: "utf-8|iso-8859-1|iso-8859-15|windows-1252",
  allowed_http_versions: "HTTP/1.0 HTTP/1.1 HTTP/2 HTTP/2.0",
  restricted_extensions:
    ".asa/ .asax/ .ascx/ .axd/ .backup/ .bak/ .bat/ .cdx/ .cer/ .cfg/ .cmd/ .com/ .config/ .conf/ .cs/ .csproj/ .csr/ .dat/ .db/ .dbf/ .dll/ .dos/ .htr/ .htw/ .ida/ .idc/ .idq/ .inc/ .ini/ .key/ .licx/ .lnk/ .log/ .mdb/ .old/ .pass/ .pdb/ .pol/ .printer/ .pwd/ .rdb/ .resources/ .resx/ .sql/ .swp/ .sys/ .vb/ .vbs/ .vbproj/ .vsdisco/ .webinfo/ .xsd/ .xsx/",
  restricted_headers: "/accept-charset/ /content-encoding/ /proxy/ /lock-token/ /content-range/ /if/",
  static_extensions: "/.jpg/ /.jpeg/ /.png/ /.gif/ /.js/ /.css/ /.ico/ /.svg/ /.webp/",
  enforce_bodyproc_urlencoded: "0",
};

/** Scores REQUEST-901 resets per transaction. */
const SCORES = [
  "anomaly_score",
  "anomaly_score_pl1",
  "anomaly_score_pl2",
  "anomaly_score_pl3",
  "anomaly_score_pl4",
  "sql_injection_score",
  "xss_score",
  "rfi_score",
  "lfi_score",
  "rce_score",
  "php_injection_score",
  "http_violation_score",
  "session_fixation_score",
  "inbound_anomaly_score",
  "outbound_anomaly_score",
  "outbound_anomaly_score_pl1",
  "outbound_anomaly_score_pl2",
  "outbound_anomaly_score_pl3",
  "outbound_anomaly_score_pl4",
  "sql_error_match",
];

const DEFAULT_ACTIONS = [
  `SecDefaultAction "phase:1,log,auditlog,pass"`,
  `SecDefaultAction "phase:2,log,auditlog,pass"`,
  `SecCollectionTimeout 600`,
];

/** From REQUEST-901: inspect bodies without a known body processor too. */
const FORCE_BODY_VARIABLE = `SecRule REQBODY_PROCESSOR "!@rx (?:URLENCODED|MULTIPART|XML|JSON)" "id:901340,phase:1,pass,nolog,noauditlog,ctl:forceRequestBodyVariable=On"`;

/**
 * The CRS configuration (what crs-setup.conf and REQUEST-901 do) for a rule set as shipped: every
 * setting and score in one action per request. A rule set that brings REQUEST-901 gets no 901340.
 */
export function crsSetup(opts: { rulesIncludeInit?: boolean } = {}): string {
  const vars = [...Object.entries(CRS_SETTINGS), ...SCORES.map((k): [string, string] => [k, "0"])];
  const setvars = vars.map(([k, v]) => `    setvar:'tx.${k}=${v}'`).join(",\\\n");
  return [
    ...DEFAULT_ACTIONS,
    `SecAction "id:900990,phase:1,pass,nolog,t:none,\\\n${setvars}"`,
    ...(opts.rulesIncludeInit ? [] : [FORCE_BODY_VARIABLE]),
  ].join("\n");
}

// ---- tuning steps --------------------------------------------------------------------------------

/** Writes CRS settings read through `%{tx.<setting>}` macros into the rules as their values. */
export function inlineSettings(
  text: string,
  settings: Readonly<Record<string, string>> = CRS_SETTINGS,
): string {
  return text.replace(/%\{tx\.([a-z0-9_]+)\}/gi, (m, name: string) => settings[name.toLowerCase()] ?? m);
}

/** TX variable names some setvar may write (a name ending in `*` is a prefix: the rest is a macro). */
function writtenTxVars(text: string): string[] {
  const out = new Set<string>();
  for (const m of text.matchAll(/setvar:'?!?tx\.([A-Za-z0-9_]*)(%\{)?/gi)) {
    out.add(m[1]!.toLowerCase() + (m[2] ? "*" : ""));
  }
  return [...out];
}

function mayBeWritten(name: string, written: readonly string[]): boolean {
  const n = name.toLowerCase();
  return written.some((w) => (w.endsWith("*") ? n.startsWith(w.slice(0, -1)) : n === w));
}

/**
 * Why a rule can never match here, or null. `written`: TX variables the loaded rules and the setup
 * may set; `initcol`: whether any rule initialises a persistent collection.
 */
export function unreachable(
  item: CrsItem,
  written: readonly string[],
  initcol: boolean,
  settings: Readonly<Record<string, string>> = CRS_SETTINGS,
): string | null {
  if (item.kind !== "rule") return null;
  const first = item.links[0]!;
  const v = first.variables ?? "";
  const tx = /^&?TX:([A-Za-z0-9_]+)$/.exec(v);
  if (
    tx &&
    first.operator === "@eq 1" &&
    !mayBeWritten(tx[1]!, written) &&
    !(tx[1]!.toLowerCase() in settings)
  ) {
    return `TX:${tx[1]} is never set, so "@eq 1" cannot hold`;
  }
  const pl = /^@ge (\d+)$/.exec(first.operator ?? "");
  if (/^TX:PARANOIA_LEVEL$/i.test(v) && pl && Number(pl[1]) > Number(settings.paranoia_level)) {
    return `the paranoia level is ${settings.paranoia_level}`;
  }
  if (
    v !== "" &&
    v.split("|").every((x) => /^!?&?(?:IP|GLOBAL|SESSION|USER|RESOURCE):/i.test(x)) &&
    !initcol
  ) {
    return "it reads a persistent collection that no loaded rule initialises";
  }
  return null;
}

/** Actions that belong to a link's own condition (move with it when links are reordered). */
const CONDITION_ACTIONS = new Set(["t", "capture", "multiMatch"]);

/**
 * Reorders a chain so that link `k` is tested first (a cheap, rarely true condition in front of one
 * that matches every ordinary request, whose match alone costs ~4x a rule that does not match). Only for chains whose links
 * are independent: no link but the last may set anything, and only the last may have effects.
 * Returns null when the chain is not such a chain.
 */
export function testFirst(item: CrsItem, k: number): CrsItem | null {
  if (item.kind !== "rule" || k <= 0 || k >= item.links.length) return null;
  const links = item.links;
  for (const [i, l] of links.entries()) {
    if (l.variables === null) return null;
    const effects = l.actions.filter((a) => {
      const n = actionName(a);
      return i === 0
        ? n === "setvar" || n === "ctl" || n === "capture"
        : !CONDITION_ACTIONS.has(n) && n !== "chain";
    });
    if (i === 0 ? effects.length > 0 : i < links.length - 1 && effects.length > 0) return null;
  }
  const cond = (l: RuleLink) => l.actions.filter((a) => CONDITION_ACTIONS.has(actionName(a)));
  const rest = (l: RuleLink) => l.actions.filter((a) => !CONDITION_ACTIONS.has(actionName(a)));
  const swap = (target: RuleLink, source: RuleLink): RuleLink => {
    const keep = rest(target);
    const at = keep.findIndex((a) => !/^(?:id|phase|block|pass|deny)\b/.test(a));
    const pos = at < 0 ? keep.length : at;
    return {
      variables: source.variables,
      operator: source.operator,
      actions: [...keep.slice(0, pos), ...cond(source), ...keep.slice(pos)],
    };
  };
  const out = [...links];
  out[0] = swap(links[0]!, links[k]!);
  out[k] = swap(links[k]!, links[0]!);
  return { ...item, links: out };
}

/**
 * Puts a cheap test in front of a single rule: the rule becomes a chain whose first link is
 * `variables operator` and carries the rule's metadata; the rule's own condition and effects
 * follow. For a guard that holds whenever the rule could match, nothing changes but the cost.
 */
export function guard(item: CrsItem, variables: string, operator: string): CrsItem | null {
  if (item.kind !== "rule" || item.links.length !== 1 || item.links[0]!.variables === null) return null;
  const [r] = item.links as [RuleLink];
  const own = (a: string) =>
    CONDITION_ACTIONS.has(actionName(a)) || ["setvar", "ctl"].includes(actionName(a));
  return {
    ...item,
    links: [
      { variables, operator, actions: [...r.actions.filter((a) => !own(a)), "chain"] },
      { variables: r.variables, operator: r.operator, actions: r.actions.filter(own) },
    ],
  };
}

/** The value of a hex escape at `i` (`\\xHH` or `\\x{H...}`) and its length, or null. */
function hexEscape(p: string, i: number): { value: number; length: number } | null {
  const braced = /^\\x\{([0-9A-Fa-f]{1,6})\}/.exec(p.slice(i));
  if (braced) return { value: Number.parseInt(braced[1]!, 16), length: braced[0].length };
  const plain = /^\\x([0-9A-Fa-f]{0,2})/.exec(p.slice(i));
  return plain ? { value: plain[1] ? Number.parseInt(plain[1], 16) : 0, length: plain[0].length } : null;
}

/** Escapes that stand for a set closed under ASCII case (or for no character). */
const CASE_CLOSED_ESCAPE = /^[dDwWsShHvVRbBAzZGKXntrfea\\^$.|?*+()[\]{}/"'`~!@#%&=:;,<>_ -]$/;

/**
 * Whether `@rx P` on a lower-cased value decides as `@rx (?i:P)` on the value itself. libmodsecurity
 * lower-cases with the C locale and PCRE2 (no UTF) folds ASCII case only, so it holds when P has no
 * upper-case letter outside a class, and every class that holds an upper-case letter also holds its
 * lower-case one (then "lower(c) in S" and "c or its other case in S" agree, negated or not). Anything
 * this scanner does not follow (octal, \\Q, properties, option changes) says no.
 */
export function lowercaseFoldable(p: string): boolean {
  let i = 0;
  while (i < p.length) {
    const c = p[i]!;
    if (c === "\\") {
      const hex = hexEscape(p, i);
      if (hex) {
        if (hex.value >= 0x41 && hex.value <= 0x5a) return false;
        i += hex.length;
        continue;
      }
      if (!CASE_CLOSED_ESCAPE.test(p[i + 1] ?? "")) return false;
      i += 2;
      continue;
    }
    if (c === "(" && p[i + 1] === "?") {
      const opts = /^\(\?([a-zA-Z^-]*)[:)]/.exec(p.slice(i));
      if (opts && /[-^]/.test(opts[1]!)) return false;
    }
    if (c >= "A" && c <= "Z") return false;
    if (c !== "[") {
      i++;
      continue;
    }
    // A class: collect its single characters and ranges.
    const set = new Array<boolean>(256).fill(false);
    let j = i + 1;
    if (p[j] === "^") j++;
    if (p[j] === "]") {
      set[0x5d] = true;
      j++;
    }
    let prev: number | null = null;
    for (;;) {
      if (j >= p.length) return false;
      const d = p[j]!;
      if (d === "]") break;
      if (d === "[" && p[j + 1] === ":") {
        const posix = /^\[:(\^?)([a-z]+):\]/.exec(p.slice(j));
        if (!posix || posix[2] === "upper" || posix[2] === "lower") return false;
        j += posix[0].length;
        if (p[j] === "-" && p[j + 1] !== "]") return false;
        prev = null;
        continue;
      }
      let value: number | null;
      let length: number;
      if (d === "\\") {
        const hex = hexEscape(p, j);
        if (hex) {
          value = hex.value;
          length = hex.length;
        } else if (CASE_CLOSED_ESCAPE.test(p[j + 1] ?? "")) {
          const e = p[j + 1]!;
          value = /[a-zA-Z]/.test(e)
            ? (({ n: 10, t: 9, r: 13, f: 12, e: 27, a: 7 } as Record<string, number>)[e] ?? null)
            : e.charCodeAt(0);
          length = 2;
        } else return false;
      } else {
        value = d.charCodeAt(0);
        length = 1;
      }
      if (d === "-" && prev !== null && p[j + 1] !== "]") {
        // A range prev-next.
        const nd = p[j + 1]!;
        let hi: number | null;
        let hl: number;
        if (nd === "\\") {
          const hex = hexEscape(p, j + 1);
          const e = p[j + 2] ?? "";
          if (hex) {
            hi = hex.value;
            hl = hex.length;
          } else if (/^[^a-zA-Z0-9]$/.test(e)) {
            hi = e.charCodeAt(0);
            hl = 2;
          } else return false;
        } else {
          hi = nd.charCodeAt(0);
          hl = 1;
        }
        if (hi < prev || hi > 255) return false;
        for (let k = prev; k <= hi; k++) set[k] = true;
        j += 1 + hl;
        prev = null;
        continue;
      }
      if (value === null) {
        // \\d, \\w, ... stand for sets closed under case, but not as a range's end.
        if (p[j + length] === "-" && p[j + length + 1] !== "]") return false;
        prev = null;
      } else {
        if (value > 255) return false;
        set[value] = true;
        prev = value;
      }
      j += length;
    }
    for (let u = 0x41; u <= 0x5a; u++) if (set[u] && !set[u + 0x20]) return false;
    i = j + 1;
  }
  return true;
}

/** Transformations that neither make nor look at letters: lower-casing before or after them is the same. */
const CASE_BLIND_TRANSFORMS = new Set([
  "t:removeNulls",
  "t:replaceNulls",
  "t:removeWhitespace",
  "t:compressWhitespace",
  "t:trim",
  "t:trimLeft",
  "t:trimRight",
  "t:normalizePath",
  "t:normalisePath",
  "t:normalizePathWin",
  "t:normalisePathWin",
]);

/**
 * Whether the links chained after `l` cannot tell the case of what `l` matched: they read only the
 * matched values, with an operator that ignores case (`@pm`), and no capture or macro of them.
 */
function caseBlindLater(links: readonly RuleLink[], l: RuleLink): boolean {
  return links
    .slice(links.indexOf(l) + 1)
    .every(
      (n) =>
        /^(?:MATCHED_VARS?)$/.test(n.variables ?? "") &&
        /^!?@pm(?:FromFile)? /.test(n.operator ?? "") &&
        !n.actions.some((a) => /%\{(?:tx\.\d|matched_var)/i.test(a)),
    );
}

/**
 * Drops the last `t:lowercase` (followed by case-blind transformations only) where the operator ignores case anyway or can be told to: libmodsecurity
 * lower-cases through a locale facet per character (a quarter of all the work on a chat request's
 * JSON body). `@pm`/`@pmFromFile` match without regard to ASCII case already; `@rx P` becomes
 * `@rx (?i:P)` when lowercaseFoldable(P). Not for a link whose match is stored or read later
 * (a capture a later link reads, a setvar of a matched value), where the value's case would show.
 */
export function foldLowercase(item: CrsItem): CrsItem {
  if (item.kind !== "rule") return item;
  const links = item.links.map((l) => {
    const t = l.actions.filter((a) => actionName(a) === "t");
    const last = t.lastIndexOf("t:lowercase");
    if (last < 0 || l.operator === null || !t.slice(last + 1).every((a) => CASE_BLIND_TRANSFORMS.has(a)))
      return l;
    if (item.links.length > 1 && l.actions.includes("capture") && !caseBlindLater(item.links, l)) return l;
    if (l.actions.some((a) => actionName(a) === "setvar" && /%\{(?:tx\.\d|matched_var)/i.test(a))) return l;
    const op = /^(!?)@(rx|pm|pmFromFile) (.*)$/s.exec(l.operator);
    if (!op) return l;
    let operator = l.operator;
    if (op[2] === "rx") {
      if (!lowercaseFoldable(op[3]!)) return l;
      operator = `${op[1]}@rx (?i:${op[3]})`;
    }
    const at = l.actions.lastIndexOf("t:lowercase");
    const actions = l.actions.filter((_a, k) => k !== at);
    return { ...l, operator, actions };
  });
  return { ...item, links };
}

const escapeRegex = (s: string) => s.replace(/[\\^$.*+?()[\]{}|/-]/g, (c) => `\\${c}`);

/**
 * Rewrites that keep a rule's decisions and make it cheap, by rule id. Each checks that the rule
 * looks as expected and returns null (the rule stays as shipped) when it does not.
 */
const REWRITES: Record<string, (item: CrsItem & { kind: "rule" }) => CrsItem | null> = {
  // GET/HEAD with a body: test the Content-Length header before the method every GET matches.
  "920170": (it) => (it.links[1]?.variables === "REQUEST_HEADERS:Content-Length" ? testFirst(it, 1) : null),
  // GET/HEAD with Transfer-Encoding: test the header count first.
  "920171": (it) =>
    it.links[1]?.variables === "&REQUEST_HEADERS:Transfer-Encoding" ? testFirst(it, 1) : null,
  // POST without Content-Length or Transfer-Encoding: test the method before the protocol.
  "920180": (it) => (it.links[1]?.operator === "@streq POST" ? testFirst(it, 1) : null),
  // Restricted headers: the shipped rule matches every header name, stores it in TX and compiles
  // TX:/^header_name_/ per request, then looks for "/<name>/" in the list. Header names are tokens
  // (nginx drops others), so that is a plain comparison of each lower-cased name with the list.
  "920450": (it) => {
    const [first, second] = it.links;
    const list = /^@within ((?:\/[a-z0-9_-]+\/ ?)+)$/.exec(second?.operator ?? "");
    if (
      it.links.length !== 2 ||
      first!.operator !== "@rx ^.*$" ||
      second!.variables !== "TX:/^header_name_/" ||
      !list
    ) {
      return null;
    }
    const names = list[1]!
      .trim()
      .split(/\s+/)
      .map((n) => n.slice(1, -1));
    return {
      ...it,
      links: [
        {
          variables: first!.variables,
          operator: `@rx ^(?:${names.map(escapeRegex).join("|")})$`,
          actions: [
            ...first!.actions.filter((a) => !/^setvar:'?tx\.header_name_/.test(a) && a !== "chain"),
            ...second!.actions.filter((a) => actionName(a) === "setvar"),
          ],
        },
      ],
    };
  },
  // Multipart part content types: only multipart bodies have part headers; the shipped rule
  // compiles TX:/MULTIPART_HEADERS_CONTENT_TYPES_*/ on every request.
  "922110": (it) =>
    /^TX:\/MULTIPART_HEADERS_CONTENT_TYPES_/i.test(it.links[0]?.variables ?? "")
      ? guard(it, "&MULTIPART_PART_HEADERS", "@gt 0")
      : null,
};

/**
 * At paranoia level 1 the inbound anomaly score is the level-1 score (949061-949063 add levels 2-4,
 * which stay 0): the blocking rule 949110 reads TX:ANOMALY_SCORE_PL1 itself instead of 949060
 * copying it over on every request (a matching rule), and sets TX:ANOMALY_SCORE only when it
 * blocks, for the log. Unchanged unless both rules look as shipped.
 */
export function readLevel1Score(items: readonly CrsItem[]): { items: CrsItem[]; dropped: string[] } {
  const copy = items.find(
    (it) =>
      it.kind === "rule" &&
      it.id === "949060" &&
      it.links.length === 1 &&
      /^TX:PARANOIA_LEVEL$/i.test(it.links[0]!.variables ?? "") &&
      it.links[0]!.operator === "@ge 1" &&
      it.links[0]!.actions.filter((a) => actionName(a) === "setvar").join() ===
        "setvar:'tx.anomaly_score=+%{tx.anomaly_score_pl1}'",
  );
  const block = items.find(
    (it) =>
      it.kind === "rule" &&
      it.id === "949110" &&
      it.links.length === 1 &&
      it.links[0]!.variables === "TX:ANOMALY_SCORE",
  );
  if (!copy || !block || block.kind !== "rule") return { items: [...items], dropped: [] };
  const [r] = block.links as [RuleLink];
  const pl1 = (a: string) => a.replace(/%\{tx\.anomaly_score\}/gi, "%{tx.anomaly_score_pl1}");
  const rewritten: CrsItem = {
    ...block,
    links: [
      {
        variables: "TX:ANOMALY_SCORE_PL1",
        operator: r.operator,
        actions: [...r.actions.map(pl1), "setvar:'tx.anomaly_score=%{tx.anomaly_score_pl1}'"],
      },
    ],
  };
  return {
    items: items.filter((it) => it !== copy).map((it) => (it === block ? rewritten : it)),
    dropped: ["949060"],
  };
}

/** Actions a mergeable rule may have: its metadata, its condition and its score. */
const MERGEABLE_ACTIONS = new Set([
  "id",
  "phase",
  "block",
  "capture",
  "t",
  "msg",
  "logdata",
  "tag",
  "ver",
  "severity",
  "setvar",
  "rev",
  "accuracy",
  "maturity",
]);
/** Patterns that cannot simply be put side by side: group references, start-of-pattern verbs. */
const UNMERGEABLE_PATTERN = /\\[1-9gkK]|\(\?(?:P?<[A-Za-z]|P[=>]|'|&|R|\d|[+-]\d|\()|\(\*/;
/**
 * A merged pattern stays well below PCRE2's compiled-size limit (64 KiB): CRS patterns compile to
 * at most ~5 bytes per source character, and libmodsecurity 3.0.9 silently never matches a pattern
 * that does not compile.
 */
const MAX_MERGED_PATTERN = 5_000;

function mergeKey(item: CrsItem, threshold: number): string | null {
  if (item.kind !== "rule" || item.links.length !== 1) return null;
  const [r] = item.links as [RuleLink];
  const op = /^@rx (.+)$/s.exec(r.operator ?? "");
  if (!r.variables || !op || UNMERGEABLE_PATTERN.test(op[1]!)) return null;
  // ctl:auditLogParts (XSS rules log more on a match) is the one control that may come along.
  const ctl = r.actions.filter((a) => actionName(a) === "ctl");
  if (!ctl.every((a) => /^ctl:auditLogParts=[+-]?[A-Z]+$/.test(a))) return null;
  if (!r.actions.every((a) => MERGEABLE_ACTIONS.has(actionName(a)) || a.startsWith("ctl:"))) return null;
  if (!r.actions.includes("block")) return null;
  const setvars = r.actions.filter((a) => actionName(a) === "setvar");
  // Every score it adds is at least the blocking threshold: one match blocks on its own.
  const scores = setvars.map((a) => /^setvar:'?tx\.anomaly_score_pl1=\+(\d+)'?$/i.exec(a)?.[1]);
  if (!scores.some((s) => s !== undefined && Number(s) >= threshold)) return null;
  const cond = r.actions.filter((a) => ["phase", "t", "capture"].includes(actionName(a)));
  return JSON.stringify([
    r.variables,
    cond,
    setvars,
    ctl,
    r.actions.filter((a) => actionName(a) === "severity"),
  ]);
}

/**
 * Merges paranoia-level-1 regex rules of one file that inspect the same variables through the same
 * transformations in the same phase and each add the same score of at least `threshold` into one
 * rule whose pattern is the alternation of theirs (capture groups are not referenced by number, so
 * none is renumbered in a way that matters). Order within a file does not matter for such rules:
 * they only add to the anomaly score, which the blocking rule reads after all of them.
 */
export function mergeRegexRules(
  items: readonly CrsItem[],
  threshold: number,
): { items: CrsItem[]; merged: Record<string, string[]> } {
  const groups = new Map<string, Array<CrsItem & { kind: "rule" }>>();
  for (const it of items) {
    const key = mergeKey(it, threshold);
    if (key === null || it.kind !== "rule") continue;
    const g = groups.get(key) ?? [];
    g.push(it);
    groups.set(key, g);
  }
  const replace = new Map<CrsItem, CrsItem | null>();
  const merged: Record<string, string[]> = {};
  for (const g of groups.values()) {
    let chunk: Array<CrsItem & { kind: "rule" }> = [];
    let size = 0;
    const flush = () => {
      if (chunk.length > 1) {
        const [head] = chunk as [CrsItem & { kind: "rule" }];
        const ids = chunk.map((c) => c.id);
        const pattern = chunk.map((c) => `(?:${c.links[0]!.operator!.slice(4)})`).join("|");
        const actions = head.links[0]!.actions.map((a) =>
          actionName(a) === "msg" ? a.replace(/^msg:'/, `msg:'CRS ${ids.join(" ")} (merged): `) : a,
        );
        if (!actions.some((a) => actionName(a) === "msg"))
          actions.push(`msg:'CRS ${ids.join(" ")} (merged)'`);
        replace.set(head, {
          ...head,
          links: [{ variables: head.links[0]!.variables, operator: `@rx ${pattern}`, actions }],
        });
        for (const c of chunk.slice(1)) replace.set(c, null);
        merged[head.id] = ids;
      }
      chunk = [];
      size = 0;
    };
    for (const it of g) {
      const len = it.links[0]!.operator!.length;
      if (size + len > MAX_MERGED_PATTERN) flush();
      chunk.push(it);
      size += len + 6;
    }
    flush();
  }
  const out: CrsItem[] = [];
  for (const it of items) {
    const r = replace.has(it) ? replace.get(it) : it;
    if (r) out.push(r);
  }
  return { items: out, merged };
}

/**
 * The settings the tuned rules still read after inlining, set once per request; and 901340 (force
 * the body variable when no body processor parses the body), tested only for requests that say
 * they have a body (Content-Length or Transfer-Encoding: HTTP/1.x has no other way; the edge
 * speaks HTTP/1.x), so an ordinary GET does not pay a matching rule for it.
 */
function tunedSetup(rulesText: string): string {
  const read = new Set<string>();
  for (const m of rulesText.matchAll(/%\{tx\.([a-z0-9_]+)\}|\bTX:([A-Za-z0-9_]+)\b/gi)) {
    read.add((m[1] ?? m[2]!).toLowerCase());
  }
  const vars = Object.entries(CRS_SETTINGS).filter(([k]) => read.has(k));
  const setvars = vars.map(([k, v]) => `setvar:'tx.${k}=${v}'`).join(",");
  return [
    ...DEFAULT_ACTIONS,
    ...(vars.length ? [`SecAction "id:900990,phase:1,pass,nolog,t:none,${setvars}"`] : []),
    `SecRule &REQUEST_HEADERS:Content-Length|&REQUEST_HEADERS:Transfer-Encoding "!@eq 0" "id:901340,phase:1,pass,nolog,noauditlog,chain"`,
    `    SecRule REQBODY_PROCESSOR "!@rx (?:URLENCODED|MULTIPART|XML|JSON)" "ctl:forceRequestBodyVariable=On"`,
  ].join("\n");
}

/** The REQUEST-* files as shipped (REQUEST-901 included), minus the exemption files, after crsSetup(). */
function untuned(
  sorted: readonly CrsFile[],
  version: string | null,
  rulesDir: string,
  why: string,
): TunedCrs {
  const kept = sorted.filter(
    (f) => f.name.startsWith("REQUEST-") && (f.name.startsWith("REQUEST-901-") || !DROPPED.test(f.name)),
  );
  return {
    text: [
      crsSetup({ rulesIncludeInit: kept.some((f) => /id:901340\b/.test(f.text)) }),
      ...kept.map((f) => `# ---- ${f.name} (as shipped)\n${absoluteDataFiles(f.text, rulesDir)}`),
    ].join("\n"),
    version,
    tuned: false,
    untunedBecause: why,
    keptFiles: kept.map((f) => f.name),
    droppedFiles: sorted.filter((f) => !kept.includes(f)).map((f) => f.name),
    droppedRules: [],
    merged: {},
  };
}

const absoluteDataFiles = (text: string, rulesDir: string) =>
  text.replace(DATA_FILE, (_m, op: string, file: string) => `${op} ${rulesDir}/${file}`);

/**
 * Builds the tuned CRS configuration from the shipped rule files (any order; sorted here as CRS
 * loads them). A version other than 3.3.x, or a rule it cannot read, gives the untuned set.
 */
export function tuneCrs(files: readonly CrsFile[], rulesDir: string): TunedCrs {
  const sorted = [...files]
    .filter((f) => f.name.endsWith(".conf"))
    .sort((a, b) => a.name.localeCompare(b.name));
  const version = crsVersion(sorted);
  if (!version?.startsWith("3.3.")) {
    return untuned(sorted, version, rulesDir, `OWASP CRS ${version ?? "of unknown version"} is not 3.3.x`);
  }
  const kept = sorted.filter((f) => f.name.startsWith("REQUEST-") && !DROPPED.test(f.name));
  const threshold = Number(CRS_SETTINGS.inbound_anomaly_score_threshold);
  // A setting some rule changes at run time is read at run time too.
  const level1 = kept.map((f) => ({
    name: f.name,
    text: absoluteDataFiles(keepParanoiaLevel1(f), rulesDir),
  }));
  const changed = writtenTxVars(level1.map((f) => f.text).join("\n"));
  const fixed = Object.fromEntries(Object.entries(CRS_SETTINGS).filter(([k]) => !mayBeWritten(k, changed)));
  let parsed: Array<{ name: string; items: CrsItem[] }>;
  try {
    parsed = level1.map((f) => ({ name: f.name, items: parseCrs(inlineSettings(f.text, fixed)) }));
  } catch (err) {
    return untuned(sorted, version, rulesDir, `a rule could not be read: ${(err as Error).message}`);
  }
  const all = parsed.map((p) => renderCrs(p.items)).join("\n");
  const written = [...writtenTxVars(all), ...SCORES];
  const initcol = /\binitcol:/i.test(all);
  const droppedRules: TunedCrs["droppedRules"] = [];
  const merged: TunedCrs["merged"] = {};
  const sections: string[] = [];
  for (const p of parsed) {
    const items: CrsItem[] = [];
    for (const it of p.items) {
      const why = unreachable(it, written, initcol);
      if (why && it.kind === "rule") {
        droppedRules.push({ id: it.id, reason: why });
        continue;
      }
      items.push(foldLowercase((it.kind === "rule" ? REWRITES[it.id]?.(it) : null) ?? it));
    }
    const scored = readLevel1Score(items);
    for (const id of scored.dropped) {
      droppedRules.push({ id, reason: "949110 reads the paranoia-level-1 score itself" });
    }
    const m = mergeRegexRules(scored.items, threshold);
    Object.assign(merged, m.merged);
    sections.push(`# ---- ${p.name} (paranoia level 1, tuned)\n${renderCrs(m.items)}`);
  }
  const rules = sections.join("\n");
  return {
    text: `${tunedSetup(rules)}\n${rules}`,
    version,
    tuned: true,
    untunedBecause: null,
    keptFiles: kept.map((f) => f.name),
    droppedFiles: sorted.filter((f) => !kept.includes(f)).map((f) => f.name),
    droppedRules,
    merged,
  };
}

/** Reads the shipped rule files (*.conf) of a CRS rules directory. */
export async function readCrsFiles(rulesDir: string): Promise<CrsFile[]> {
  const names = (await readdir(rulesDir)).filter((n) => n.endsWith(".conf"));
  return Promise.all(
    names.map(async (name) => ({ name, text: await readFile(`${rulesDir}/${name}`, "utf8") })),
  );
}

/**
 * The shipped rule set untouched (every REQUEST-* and RESPONSE-* file, data paths made absolute)
 * after crsSetup(), whose values REQUEST-901 respects: for comparison in bench/edge.ts and tests.
 */
export function stockCrs(files: readonly CrsFile[], rulesDir: string): string {
  const rules = [...files]
    .filter((f) => f.name.endsWith(".conf"))
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((f) => `# ---- ${f.name} (as shipped)\n${absoluteDataFiles(f.text, rulesDir)}`);
  return [crsSetup({ rulesIncludeInit: rules.some((r) => /id:901340\b/.test(r)) }), ...rules].join("\n");
}
