import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, connect as netConnect, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { proxyProtocolLine, startEgressProxy } from "./proxy.ts";

/** A raw TCP upstream that records the bytes each connection sent and answers a fixed HTTP reply. */
async function recordingUpstream(): Promise<{ server: Server; port: number; seen: string[] }> {
  const seen: string[] = [];
  const server = createServer((s: Socket) => {
    let got = "";
    s.on("data", (b) => {
      got += b.toString("latin1");
      if (got.includes("\r\n\r\n")) {
        seen.push(got);
        s.end("HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
      }
    });
    s.on("error", () => {});
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const addr = server.address();
  return { server, port: typeof addr === "object" && addr ? addr.port : 0, seen };
}

/** One request through the proxy, as a tenant on 127.0.0.1 would send it (raw bytes, no client library). */
function rawRequest(proxyPort: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host: "127.0.0.1", port: proxyPort });
    let out = "";
    s.on("data", (b) => {
      out += b.toString("latin1");
    });
    s.on("end", () => resolve(out));
    s.on("error", reject);
    s.write(bytes);
    setTimeout(() => {
      s.destroy();
      resolve(out);
    }, 3000).unref();
  });
}

test("PROXY v1 lines: v4, v4-mapped towards a v6 upstream, and UNKNOWN where v1 cannot say it", () => {
  const up = { localPort: 40000, remoteAddress: "127.0.0.1", remotePort: 4180 };
  assert.equal(proxyProtocolLine("198.19.0.7", up), "PROXY TCP4 198.19.0.7 127.0.0.1 40000 4180\r\n");
  assert.equal(
    proxyProtocolLine("198.19.0.7", { ...up, remoteAddress: "::1" }),
    "PROXY TCP6 ::ffff:198.19.0.7 ::1 40000 4180\r\n",
  );
  assert.equal(proxyProtocolLine("fd00::7", up), "PROXY UNKNOWN\r\n");
});

test("a platform upstream with proxyProtocol gets the tenant's source address first, before any byte of the tenant's; without it, none", async () => {
  const dir = await mkdtemp(join(tmpdir(), "ck-pp-"));
  const up = await recordingUpstream();
  const make = (proxyProtocol: boolean) =>
    startEgressProxy({
      logFile: join(dir, `egress-${proxyProtocol}.jsonl`),
      policy: { tenants: [{ name: "alice", addresses: ["127.0.0.1"] }], ports: [4180] },
      platformUpstreams: [
        {
          host: "llm.clawkeep.internal",
          port: 4180,
          address: "127.0.0.1",
          targetPort: up.port,
          proxyProtocol,
        },
      ],
    });
  const withLine = await make(true);
  const without = await make(false);
  try {
    // Plain HTTP in absolute form, and a tenant that writes a forged PROXY line of its own in a tunnel.
    const plain = await rawRequest(
      withLine.port,
      "GET http://llm.clawkeep.internal:4180/v1/models HTTP/1.1\r\nhost: llm.clawkeep.internal:4180\r\nconnection: close\r\n\r\n",
    );
    assert.match(plain, /200 OK/);
    const tunnel = await rawRequest(
      withLine.port,
      "CONNECT llm.clawkeep.internal:4180 HTTP/1.1\r\nhost: llm.clawkeep.internal:4180\r\n\r\n" +
        "PROXY TCP4 198.19.0.99 127.0.0.1 1 4180\r\nGET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n",
    );
    assert.match(tunnel, /200 Connection Established[\s\S]*200 OK/);
    assert.equal(up.seen.length, 2);
    for (const got of up.seen) {
      const first = got.split("\r\n")[0] ?? "";
      assert.match(
        first,
        /^PROXY TCP4 127\.0\.0\.1 127\.0\.0\.1 \d+ \d+$/,
        "the proxy's line names the tenant's address",
      );
    }
    assert.ok(
      (up.seen[1] ?? "").indexOf("198.19.0.99") > (up.seen[1] ?? "").indexOf("\r\n"),
      "the tenant's forged line comes after the proxy's, where it is only the tenant's data",
    );

    // Control: the same upstream without the flag sees the tenant's request as its first line.
    const before = up.seen.length;
    const plain2 = await rawRequest(
      without.port,
      "GET http://llm.clawkeep.internal:4180/v1/models HTTP/1.1\r\nhost: llm.clawkeep.internal:4180\r\nconnection: close\r\n\r\n",
    );
    assert.match(plain2, /200 OK/);
    assert.doesNotMatch(up.seen[before] ?? "", /^PROXY /);
  } finally {
    await withLine.close();
    await without.close();
    await new Promise<void>((r) => up.server.close(() => r()));
    await rm(dir, { recursive: true, force: true });
  }
});
