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

async function caUsable(
  openssl: string,
  dir: string,
  domain: string,
  signal?: AbortSignal,
): Promise<boolean> {
  const crt = join(dir, "ca.crt");
  const key = join(dir, "ca.key");
  if (!(await exists(crt)) || !(await exists(key))) return false;
  if (!(await validFor(openssl, crt, LEAF_DAYS * 24 * 3600, signal))) return false;
  const nc = await ok([openssl, "x509", "-in", crt, "-noout", "-ext", "nameConstraints"], signal);
  if (!nc || !new RegExp(`DNS:${domain.replace(/\./g, "\\.")}\\s*$`, "m").test(nc)) return false;
  return keyMatches(openssl, crt, key, signal);
}

async function leafUsable(
  openssl: string,
  dir: string,
  domain: string,
  signal?: AbortSignal,
): Promise<boolean> {
  const crt = join(dir, "edge.crt");
  const key = join(dir, "edge.key");
  if (!(await exists(crt)) || !(await exists(key))) return false;
  if (!(await validFor(openssl, crt, RENEW_BEFORE_SECONDS, signal))) return false;
  const san = await ok([openssl, "x509", "-in", crt, "-noout", "-ext", "subjectAltName"], signal);
  if (!san?.includes(`DNS:*.${domain}`)) return false;
  if ((await ok([openssl, "verify", "-CAfile", join(dir, "ca.crt"), crt], signal)) === null) return false;
  return keyMatches(openssl, crt, key, signal);
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
  const sig = signal ? { signal } : {};
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
      await newKey(openssl, join(dir, "ca.key.new"), signal);
      const ca = await execFile(
        [
          openssl,
          "req",
          "-x509",
          "-new",
          "-config",
          "/dev/null",
          "-key",
          join(dir, "ca.key.new"),
          "-subj",
          `/O=clawkeep/CN=clawkeep local CA for ${domain}`,
          "-days",
          String(CA_DAYS),
          "-addext",
          "basicConstraints=critical,CA:TRUE,pathlen:0",
          "-addext",
          "keyUsage=critical,keyCertSign,cRLSign",
          "-addext",
          `nameConstraints=critical,permitted;DNS:${domain}`,
          "-addext",
          "subjectKeyIdentifier=hash",
        ],
        sig,
      );
      await writeFile(join(dir, "ca.crt.new"), ca, { mode: 0o644 });
      await rename(join(dir, "ca.key.new"), join(dir, "ca.key"));
      await rename(join(dir, "ca.crt.new"), join(dir, "ca.crt"));
      made = "ca+leaf";
    }
    if (made !== "none" || !(await leafUsable(openssl, dir, domain, signal))) {
      await newKey(openssl, join(dir, "edge.key.new"), signal);
      const leaf = await execFile(
        [
          openssl,
          "req",
          "-x509",
          "-new",
          "-config",
          "/dev/null",
          "-key",
          join(dir, "edge.key.new"),
          "-CA",
          join(dir, "ca.crt"),
          "-CAkey",
          join(dir, "ca.key"),
          "-subj",
          `/CN=*.${domain}`,
          "-days",
          String(LEAF_DAYS),
          "-addext",
          `subjectAltName=DNS:*.${domain},DNS:${domain}`,
          "-addext",
          "basicConstraints=critical,CA:FALSE",
          "-addext",
          "keyUsage=critical,digitalSignature",
          "-addext",
          "extendedKeyUsage=serverAuth",
        ],
        sig,
      );
      await writeFile(join(dir, "edge.crt.new"), leaf, { mode: 0o644 });
      await rename(join(dir, "edge.key.new"), out.keyFile);
      await rename(join(dir, "edge.crt.new"), out.certFile);
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
