import assert from "node:assert/strict";
import { chmod, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, type TestContext, test } from "node:test";
import { certificateArgv, ensureLocalCertificate } from "../src/edge/certs.ts";
import { execFile } from "../src/lib/exec.ts";

/* The edge's local CA and wildcard certificate, made and checked with the real openssl CLI. */

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tmp(): Promise<string> {
  const d = await mkdtemp("/tmp/clawkeep-edge-certs-");
  dirs.push(d);
  return join(d, "certs");
}

/** True, with the test skipped and told why, when the openssl CLI is not installed. */
async function opensslMissing(t: TestContext): Promise<boolean> {
  if (await execFile(["openssl", "version"]).catch(() => null)) return false;
  t.skip("openssl is missing: install it (scripts/deps.sh)");
  return true;
}

const text = (f: string, ...args: string[]) => execFile(["openssl", "x509", "-in", f, "-noout", ...args]);

test("makes a name-constrained CA and a wildcard certificate it signed; keys 0600, directory 0700", async (t) => {
  if (await opensslMissing(t)) return;
  const dir = await tmp();
  const c = await ensureLocalCertificate({ dir, domain: "claw.test" });
  assert.equal(c.made, "ca+leaf");
  assert.equal((await stat(dir)).mode & 0o777, 0o700);
  for (const k of [c.keyFile, join(dir, "ca.key")]) assert.equal((await stat(k)).mode & 0o777, 0o600, k);
  assert.match(await text(c.certFile, "-ext", "subjectAltName"), /DNS:\*\.claw\.test, DNS:claw\.test/);
  assert.match(await text(c.certFile, "-ext", "basicConstraints"), /CA:FALSE/);
  assert.match(await text(c.caFile, "-ext", "nameConstraints"), /Permitted:\s+DNS:claw\.test/);
  assert.match(await execFile(["openssl", "verify", "-CAfile", c.caFile, c.certFile]), /OK/);
  // The name constraint is real: the CA cannot vouch for another domain.
  const other = join(dir, "..", "other.crt");
  await writeFile(
    other,
    await execFile(
      certificateArgv("openssl", {
        key: c.keyFile,
        ca: { cert: c.caFile, key: join(dir, "ca.key") },
        subject: "/CN=bank.example",
        days: 1,
        extensions: ["subjectAltName=DNS:bank.example"],
      }),
    ),
  );
  await assert.rejects(
    execFile(["openssl", "verify", "-CAfile", c.caFile, other]),
    /name constraint|permitted/i,
  );
});

test("reuses valid files, renews a leaf that no longer matches, and a CA for another domain", async (t) => {
  if (await opensslMissing(t)) return;
  const dir = await tmp();
  const first = await ensureLocalCertificate({ dir, domain: "claw.test" });
  const serial = await text(first.certFile, "-serial");
  const again = await ensureLocalCertificate({ dir, domain: "claw.test" });
  assert.equal(again.made, "none");
  assert.equal(await text(again.certFile, "-serial"), serial);

  // A key that does not belong to the certificate (a botched copy) makes a new leaf, same CA.
  await writeFile(
    first.keyFile,
    await execFile(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]),
  );
  await chmod(first.keyFile, 0o644);
  const caSerial = await text(first.caFile, "-serial");
  const fixed = await ensureLocalCertificate({ dir, domain: "claw.test" });
  assert.equal(fixed.made, "leaf");
  assert.equal(await text(fixed.caFile, "-serial"), caSerial);
  assert.equal((await stat(fixed.keyFile)).mode & 0o777, 0o600, "the key mode is repaired too");

  const moved = await ensureLocalCertificate({ dir, domain: "claw.example.org" });
  assert.equal(moved.made, "ca+leaf");
  assert.match(await text(moved.certFile, "-ext", "subjectAltName"), /DNS:\*\.claw\.example\.org/);
});
