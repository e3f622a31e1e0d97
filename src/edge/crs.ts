/**
 * Tuning of the OWASP Core Rule Set (Debian's modsecurity-crs, CRS 3.3) for the edge. Pure text
 * transforms; reading the files is the caller's one small I/O step (readCrsFiles).
 *
 * Why: libmodsecurity 3 pays a fixed cost for every rule it visits on every request (a rule
 * message, variable copies, allocations), whether or not the rule can match. Measured here, the
 * stock set costs ~10x an nginx TLS proxy. The tuned set keeps every paranoia-level-1 detection
 * rule and drops only what cannot fire or does not apply to this edge:
 * - rules above paranoia level 1 (CRS skips them at PL1 anyway, but still visits them);
 * - the "executing paranoia level < 1" gates (the level is fixed at 1);
 * - REQUEST-901 initialisation: its defaults are set in one action by crsSetup() instead of
 *   ~30 rules per request; its IP/UA collections only serve the dropped 910/912;
 * - REQUEST-903.* (Drupal, WordPress, ... exclusion packages, off by default);
 * - REQUEST-905 (Apache's internal dummy connection and a `GET /` from localhost exemption: wrong
 *   for an edge whose clients can all be local);
 * - REQUEST-910 (IP reputation: needs block lists) and REQUEST-912 (DoS: nginx's limits do it);
 * - RESPONSE-* (response bodies are not inspected: the tenant's own gateway produces them).
 * Data files referenced by rules are made absolute, since the tuned text lives elsewhere.
 * A CRS version other than 3.3.x is used untuned (the REQUEST-* files as shipped, REQUEST-901
 * included, minus the exemption files above), which is correct, only slower.
 */
import { readdir, readFile } from "node:fs/promises";

export interface CrsFile {
  /** File name, e.g. REQUEST-942-APPLICATION-ATTACK-SQLI.conf. */
  name: string;
  text: string;
}

export interface TunedCrs {
  /** Rules text to load after crsSetup(). */
  text: string;
  /** e.g. "3.3.4", or null when no signature was found. */
  version: string | null;
  tuned: boolean;
  keptFiles: string[];
  droppedFiles: string[];
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

/** Builds the tuned rule text from the shipped CRS rule files (any order; sorted here as CRS loads them). */
export function tuneCrs(files: readonly CrsFile[], rulesDir: string): TunedCrs {
  const sorted = [...files]
    .filter((f) => f.name.endsWith(".conf"))
    .sort((a, b) => a.name.localeCompare(b.name));
  const version = crsVersion(sorted);
  const absolute = (text: string) =>
    text.replace(DATA_FILE, (_m, op: string, file: string) => `${op} ${rulesDir}/${file}`);
  if (!version?.startsWith("3.3.")) {
    // Unknown layout: every request file as shipped (REQUEST-901 included), minus the exemptions.
    const kept = sorted.filter(
      (f) => f.name.startsWith("REQUEST-") && (f.name.startsWith("REQUEST-901-") || !DROPPED.test(f.name)),
    );
    return {
      text: kept.map((f) => `# ---- ${f.name} (as shipped)\n${absolute(f.text)}`).join("\n"),
      version,
      tuned: false,
      keptFiles: kept.map((f) => f.name),
      droppedFiles: sorted.filter((f) => !kept.includes(f)).map((f) => f.name),
    };
  }
  const kept = sorted.filter((f) => f.name.startsWith("REQUEST-") && !DROPPED.test(f.name));
  const dropped = sorted.filter((f) => !kept.includes(f)).map((f) => f.name);
  return {
    text: kept
      .map((f) => `# ---- ${f.name} (paranoia level 1)\n${absolute(keepParanoiaLevel1(f))}`)
      .join("\n"),
    version,
    tuned: true,
    keptFiles: kept.map((f) => f.name),
    droppedFiles: dropped,
  };
}

/** HTTP methods the platform's APIs use; CRS blocks others (911100). */
export const ALLOWED_METHODS = ["GET", "HEAD", "POST", "OPTIONS", "PUT", "PATCH", "DELETE"] as const;

/**
 * The CRS configuration (what crs-setup.conf and REQUEST-901 do), as one action per request.
 * Values are CRS 3.3's defaults, except allowed methods (the platform API uses PUT/PATCH/DELETE).
 * Only for a tuned set: an untuned set brings REQUEST-901, which respects these values.
 */
export function crsSetup(opts: { rulesIncludeInit?: boolean } = {}): string {
  const vars: Array<[string, string]> = [
    ["crs_setup_version", "334"],
    ["paranoia_level", "1"],
    ["executing_paranoia_level", "1"],
    ["inbound_anomaly_score_threshold", "5"],
    ["outbound_anomaly_score_threshold", "4"],
    ["sampling_percentage", "100"],
    ["critical_anomaly_score", "5"],
    ["error_anomaly_score", "4"],
    ["warning_anomaly_score", "3"],
    ["notice_anomaly_score", "2"],
    ["do_reput_block", "0"],
    ["reput_block_duration", "300"],
    ["allowed_methods", ALLOWED_METHODS.join(" ")],
    [
      "allowed_request_content_type",
      "|application/x-www-form-urlencoded| |multipart/form-data| |multipart/related| |text/xml| |application/xml| |application/soap+xml| |application/json| |application/cloudevents+json| |application/cloudevents-batch+json|",
    ],
    ["allowed_request_content_type_charset", "utf-8|iso-8859-1|iso-8859-15|windows-1252"],
    ["allowed_http_versions", "HTTP/1.0 HTTP/1.1 HTTP/2 HTTP/2.0"],
    [
      "restricted_extensions",
      ".asa/ .asax/ .ascx/ .axd/ .backup/ .bak/ .bat/ .cdx/ .cer/ .cfg/ .cmd/ .com/ .config/ .conf/ .cs/ .csproj/ .csr/ .dat/ .db/ .dbf/ .dll/ .dos/ .htr/ .htw/ .ida/ .idc/ .idq/ .inc/ .ini/ .key/ .licx/ .lnk/ .log/ .mdb/ .old/ .pass/ .pdb/ .pol/ .printer/ .pwd/ .rdb/ .resources/ .resx/ .sql/ .swp/ .sys/ .vb/ .vbs/ .vbproj/ .vsdisco/ .webinfo/ .xsd/ .xsx/",
    ],
    ["restricted_headers", "/accept-charset/ /content-encoding/ /proxy/ /lock-token/ /content-range/ /if/"],
    ["static_extensions", "/.jpg/ /.jpeg/ /.png/ /.gif/ /.js/ /.css/ /.ico/ /.svg/ /.webp/"],
    ["enforce_bodyproc_urlencoded", "0"],
    // Scores REQUEST-901 resets per transaction.
    ...[
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
    ].map((k): [string, string] => [k, "0"]),
  ];
  const setvars = vars.map(([k, v]) => `    setvar:'tx.${k}=${v}'`).join(",\\\n");
  return [
    `SecDefaultAction "phase:1,log,auditlog,pass"`,
    `SecDefaultAction "phase:2,log,auditlog,pass"`,
    `SecCollectionTimeout 600`,
    `SecAction "id:900990,phase:1,pass,nolog,t:none,\\\n${setvars}"`,
    // From REQUEST-901 (unless the rules bring it): inspect bodies without a known body processor too.
    ...(opts.rulesIncludeInit
      ? []
      : [
          `SecRule REQBODY_PROCESSOR "!@rx (?:URLENCODED|MULTIPART|XML|JSON)" "id:901340,phase:1,pass,nolog,noauditlog,ctl:forceRequestBodyVariable=On"`,
        ]),
  ].join("\n");
}

/** Reads the shipped rule files (*.conf) of a CRS rules directory. */
export async function readCrsFiles(rulesDir: string): Promise<CrsFile[]> {
  const names = (await readdir(rulesDir)).filter((n) => n.endsWith(".conf"));
  return Promise.all(
    names.map(async (name) => ({ name, text: await readFile(`${rulesDir}/${name}`, "utf8") })),
  );
}

/**
 * The shipped rule set untouched (every REQUEST-* and RESPONSE-* file, data paths made absolute),
 * for comparison in bench/edge.ts. Loaded after crsSetup(), whose values REQUEST-901 respects.
 */
export function stockCrs(files: readonly CrsFile[], rulesDir: string): string {
  return [...files]
    .filter((f) => f.name.endsWith(".conf"))
    .sort((a, b) => a.name.localeCompare(b.name))
    .map(
      (f) =>
        `# ---- ${f.name} (as shipped)\n${f.text.replace(DATA_FILE, (_m, op: string, file: string) => `${op} ${rulesDir}/${file}`)}`,
    )
    .join("\n");
}
