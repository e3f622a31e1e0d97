/**
 * The local CA and wildcard certificate that let `npm start` serve TLS out of the box. Made with
 * the openssl CLI (argument arrays, no shell); keys are written 0600 by this process, never
 * through a shell redirection. Reused while valid; renewed 30 days before expiry, or when the
 * domain, the key pair or the CA no longer match. Operators who bring their own certificate and
 * key pass those files to the edge instead and this module is not used.
 */
import { chmod, mkdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execFile } from "../lib/exec.ts";
import { EdgeError } from "./errors.ts";
import { assertSafePath, parseDomain } from "./render.ts";

export interface LocalCertificate {
  certFile: string;
  keyFile: string;
  /** The CA to trust (clients, browsers, tests). Its name constraints limit it to the domain. */
  caFile: string;
  /** What this call made: nothing (all reused), the leaf only, or CA and leaf. */
  made: "none" | "leaf" | "ca+leaf";
}

const RENEW_BEFORE_SECONDS = 30 * 24 * 3600;
const CA_DAYS = 3650;
const LEAF_DAYS = 397;

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
}

async function ok(argv: string[], signal?: AbortSignal): Promise<string | null> {
  return execFile(argv, signal ? { signal } : {}).catch(() => null);
}

async function writePrivate(path: string, text: string, mode: number): Promise<void> {
  await rm(path, { force: true });
  await writeFile(path, text, { mode, flag: "wx" });
  await chmod(path, mode);
}

/** True when the certificate and the key belong together. */
async function keyMatches(
  openssl: string,
  certFile: string,
  keyFile: string,
  signal?: AbortSignal,
): Promise<boolean> {
  const a = await ok([openssl, "x509", "-in", certFile, "-noout", "-pubkey"], signal);
  const b = await ok([openssl, "pkey", "-in", keyFile, "-pubout"], signal);
  return a !== null && b !== null && a.trim() === b.trim();
}

async function validFor(
  openssl: string,
  certFile: string,
  seconds: number,
  signal?: AbortSignal,
): Promise<boolean> {
  return (
    (await ok([openssl, "x509", "-in", certFile, "-noout", "-checkend", String(seconds)], signal)) !== null
  );
}

/**
 * True when `<name>.crt` and `<name>.key` exist in `dir`, the certificate stays valid for `seconds`
 * more, passes `fits` (what ties it to the domain), and the key belongs to it.
 */
async function usable(
  openssl: string,
  dir: string,
  name: string,
  seconds: number,
  fits: (crt: string) => Promise<boolean>,
  signal?: AbortSignal,
): Promise<boolean> {
  const crt = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  if (!(await exists(crt)) || !(await exists(key))) return false;
  if (!(await validFor(openssl, crt, seconds, signal))) return false;
  if (!(await fits(crt))) return false;
  return keyMatches(openssl, crt, key, signal);
}

/** The CA: valid as long as a leaf it signs, and constrained to `domain`. */
function caUsable(openssl: string, dir: string, domain: string, signal?: AbortSignal): Promise<boolean> {
  return usable(
    openssl,
    dir,
    "ca",
    LEAF_DAYS * 24 * 3600,
    async (crt) => {
      const nc = await ok([openssl, "x509", "-in", crt, "-noout", "-ext", "nameConstraints"], signal);
      return nc !== null && new RegExp(`DNS:${domain.replace(/\./g, "\\.")}\\s*$`, "m").test(nc);
    },
    signal,
  );
}

/** The leaf: not due for renewal, for `*.<domain>`, and signed by the CA in `dir`. */
function leafUsable(openssl: string, dir: string, domain: string, signal?: AbortSignal): Promise<boolean> {
  return usable(
    openssl,
    dir,
    "edge",
    RENEW_BEFORE_SECONDS,
    async (crt) => {
      const san = await ok([openssl, "x509", "-in", crt, "-noout", "-ext", "subjectAltName"], signal);
      if (!san?.includes(`DNS:*.${domain}`)) return false;
      return (await ok([openssl, "verify", "-CAfile", join(dir, "ca.crt"), crt], signal)) !== null;
    },
    signal,
  );
}

async function newKey(openssl: string, path: string, signal?: AbortSignal): Promise<void> {
  const pem = await execFile(
    [openssl, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    {
      ...(signal ? { signal } : {}),
    },
  );
  await writePrivate(path, pem, 0o600);
}

/** A certificate for `key`, signed by `ca` or, without one, by itself. */
export interface CertificateRequest {
  key: string;
  /** The subject, as openssl's `-subj` reads it ("/O=.../CN=..."). */
  subject: string;
  days: number;
  /** X.509v3 extensions, each passed as one `-addext` (e.g. "keyUsage=critical,digitalSignature"). */
  extensions: readonly string[];
  ca?: { cert: string; key: string };
}

/** The openssl argv that prints the certificate `req` asks for as PEM; it reads no config file. */
export function certificateArgv(openssl: string, req: CertificateRequest): string[] {
  return [
    openssl,
    "req",
    "-x509",
    "-new",
    "-config",
    "/dev/null",
    "-key",
    req.key,
    ...(req.ca ? ["-CA", req.ca.cert, "-CAkey", req.ca.key] : []),
    "-subj",
    req.subject,
    "-days",
    String(req.days),
    ...req.extensions.flatMap((ext) => ["-addext", ext]),
  ];
}

/**
 * Makes `<name>.key` (0600) and `<name>.crt` in `dir`: a new key and its certificate, each written
 * beside its place and renamed into it, the key first.
 */
async function issue(
  openssl: string,
  dir: string,
  name: string,
  req: Omit<CertificateRequest, "key">,
  signal?: AbortSignal,
): Promise<void> {
  const key = join(dir, `${name}.key.new`);
  const crt = join(dir, `${name}.crt.new`);
  await newKey(openssl, key, signal);
  const pem = await execFile(certificateArgv(openssl, { ...req, key }), signal ? { signal } : {});
  await writeFile(crt, pem, { mode: 0o644 });
  await rename(key, join(dir, `${name}.key`));
  await rename(crt, join(dir, `${name}.crt`));
}

/**
 * Makes (or reuses) a local CA and a certificate for `*.<domain>` and `<domain>` in `dir`
 * (created 0700). Files: ca.key, ca.crt, edge.key, edge.crt; keys are 0600.
 */
export async function ensureLocalCertificate(opts: {
  dir: string;
  domain: string;
  signal?: AbortSignal;
  openssl?: string;
}): Promise<LocalCertificate> {
  const dir = assertSafePath(opts.dir, "certificate directory");
  const domain = parseDomain(opts.domain);
  const openssl = opts.openssl ?? "openssl";
  const signal = opts.signal;
  const out = {
    certFile: join(dir, "edge.crt"),
    keyFile: join(dir, "edge.key"),
    caFile: join(dir, "ca.crt"),
  };
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  try {
    let made: LocalCertificate["made"] = "none";
    if (!(await caUsable(openssl, dir, domain, signal))) {
      await issue(
        openssl,
        dir,
        "ca",
        {
          subject: `/O=clawkeep/CN=clawkeep local CA for ${domain}`,
          days: CA_DAYS,
          extensions: [
            "basicConstraints=critical,CA:TRUE,pathlen:0",
            "keyUsage=critical,keyCertSign,cRLSign",
            `nameConstraints=critical,permitted;DNS:${domain}`,
            "subjectKeyIdentifier=hash",
          ],
        },
        signal,
      );
      made = "ca+leaf";
    }
    if (made !== "none" || !(await leafUsable(openssl, dir, domain, signal))) {
      await issue(
        openssl,
        dir,
        "edge",
        {
          ca: { cert: join(dir, "ca.crt"), key: join(dir, "ca.key") },
          subject: `/CN=*.${domain}`,
          days: LEAF_DAYS,
          extensions: [
            `subjectAltName=DNS:*.${domain},DNS:${domain}`,
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature",
            "extendedKeyUsage=serverAuth",
          ],
        },
        signal,
      );
      if (made === "none") made = "leaf";
    }
    // Repair modes a copy or an older run may have left looser.
    await chmod(join(dir, "ca.key"), 0o600);
    await chmod(out.keyFile, 0o600);
    return { ...out, made };
  } catch (err) {
    if (err instanceof EdgeError) throw err;
    throw new EdgeError(`could not make the edge's local certificate in ${dir}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}
