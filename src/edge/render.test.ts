import assert from "node:assert/strict";
import { test } from "node:test";
import { ValidationError } from "../core/errors.ts";
import {
  assertSafePath,
  DEBIAN_EDGE_SYSTEM,
  type EdgeConfig,
  edgePaths,
  parseDomain,
  parseListen,
  parseUpstream,
  renderEdge,
  validateLimits,
  validateRoutes,
} from "./render.ts";
import { DEFAULT_EDGE_LIMITS } from "./types.ts";

function config(over: Partial<EdgeConfig> = {}): EdgeConfig {
  return {
    generation: "g1",
    domain: "clawkeep.example.com",
    listen: { host: "0.0.0.0", port: 443 },
    certFile: "/var/lib/clawkeep/edge/certs/edge.crt",
    keyFile: "/var/lib/clawkeep/edge/certs/edge.key",
    routes: [
      { tenant: "alice", upstream: "http://127.0.0.1:20000" },
      { tenant: "bob", upstream: "http://127.0.0.1:20200/" },
    ],
    apiUpstream: "http://127.0.0.1:8080",
    consoleUpstream: null,
    limits: DEFAULT_EDGE_LIMITS,
    waf: true,
    crsRules: 'SecRule ARGS "@rx evil" "id:942999,phase:2,block"',
    user: "clawkeep-edge",
    workerProcesses: "auto",
    maxOpenFiles: 20000,
    workerShutdownSeconds: 300,
    paths: edgePaths("/var/lib/clawkeep/edge"),
    system: DEBIAN_EDGE_SYSTEM,
    ...over,
  };
}

const invalid = (fn: () => unknown) => assert.throws(fn, (e) => e instanceof ValidationError);

test("renders one TLS 1.3 server per tenant plus api, routed to its own upstream", () => {
  const { nginxConf } = renderEdge(config());
  assert.match(nginxConf, /^\s*ssl_protocols TLSv1\.3;$/m);
  assert.doesNotMatch(nginxConf, /TLSv1\.2|TLSv1\.1|TLSv1;/);
  assert.match(nginxConf, /server_name alice\.clawkeep\.example\.com;/);
  assert.match(nginxConf, /server_name bob\.clawkeep\.example\.com;/);
  assert.match(nginxConf, /server_name api\.clawkeep\.example\.com;/);
  assert.doesNotMatch(nginxConf, /server_name console\./, "no console upstream, no console host");
  assert.match(nginxConf, /upstream ck_t_alice \{\s+server 127\.0\.0\.1:20000 /);
  assert.match(nginxConf, /upstream ck_t_bob \{\s+server 127\.0\.0\.1:20200 /);
  assert.match(nginxConf, /listen 0\.0\.0\.0:443 ssl default_server;\s+server_name _;[^}]*return 421;/);
  assert.match(nginxConf, /^user clawkeep-edge clawkeep-edge;$/m);
  assert.match(nginxConf, /^pid \/var\/lib\/clawkeep\/edge\/run\/nginx\.pid;$/m);
  assert.match(nginxConf, /return 200 "g1";/, "the probe answers the generation");
  assert.match(nginxConf, /proxy_set_header Upgrade \$http_upgrade;/);
  assert.match(nginxConf, /modsecurity_transaction_id "alice:\$request_id";/);
  assert.match(nginxConf, /error_log \/var\/lib\/clawkeep\/edge\/logs\/tenants\/alice\.error\.log warn;/);
  assert.match(nginxConf, /limit_req zone=ck_client_req burst=100 nodelay;/);
  assert.match(nginxConf, /limit_req_zone \$server_name zone=ck_tenant_req:4m rate=200r\/s;/);
  assert.match(nginxConf, /client_max_body_size 8388608;/);
  assert.doesNotMatch(
    nginxConf,
    /\/etc\/nginx\/(?:sites|conf\.d|nginx\.conf)/,
    "nothing from the system nginx config",
  );
});

test("the WAF is loaded once at http level; without it nothing of ModSecurity is rendered", () => {
  const on = renderEdge(config());
  assert.match(on.nginxConf, /^load_module \/usr\/lib\/nginx\/modules\/ngx_http_modsecurity_module\.so;$/m);
  assert.equal(on.nginxConf.match(/modsecurity_rules_file/g)?.length, 1);
  assert.equal(on.files.length, 1);
  const [file] = on.files;
  assert.match(file!.name, /^modsecurity-[0-9a-f]{16}\.conf$/);
  assert.ok(on.nginxConf.includes(`/var/lib/clawkeep/edge/conf/${file!.name}`));
  assert.match(file!.text, /^SecRuleEngine On$/m);
  assert.match(file!.text, /^SecResponseBodyAccess Off$/m);
  assert.match(file!.text, /^SecAuditLogParts AHZ$/m, "audit log keeps no headers or bodies");
  assert.ok(
    file!.text.includes('SecRule ARGS "@rx evil" "id:942999,phase:2,block"'),
    "the CRS text as given",
  );
  assert.match(file!.text, /^SecRequestBodyLimit 8388608$/m);
  // No variable of the engine's own rules is a regex (compiled on every request in libmodsecurity 3.0.9).
  assert.doesNotMatch(file!.text, /^\s*SecRule [^ ]*:\//m);
  assert.match(file!.text, /^SecRule TX:MSC_PCRE_LIMITS_EXCEEDED "!@streq 0" "id:200005,/m);
  for (const [id, variable] of [
    ["200003", "MULTIPART_STRICT_ERROR"],
    ["200004", "MULTIPART_UNMATCHED_BOUNDARY"],
  ]) {
    assert.match(
      file!.text,
      new RegExp(
        `^SecRule REQBODY_PROCESSOR "@streq MULTIPART" "id:${id},[^"]*,chain"\\n\\s+SecRule ${variable} `,
        "m",
      ),
      `${id} is tested for multipart bodies only`,
    );
  }

  const off = renderEdge(config({ waf: false, crsRules: null }));
  assert.doesNotMatch(off.nginxConf, /modsecurity/i);
  assert.deepEqual(off.files, []);
  invalid(() => renderEdge(config({ crsRules: null })));
});

test("the ModSecurity file is named by its content", () => {
  const a = renderEdge(config()).files[0]!.name;
  assert.equal(
    renderEdge(config({ generation: "g2", routes: [] })).files[0]!.name,
    a,
    "routes do not change it",
  );
  const b = renderEdge(config({ limits: { ...DEFAULT_EDGE_LIMITS, maxBodyBytes: 4096 } })).files[0]!.name;
  assert.notEqual(a, b);
});

test("upstreams are http://<address>:<port> only: unix sockets and everything else are refused", () => {
  assert.deepEqual(parseUpstream("http://127.0.0.1:20000"), {
    host: "127.0.0.1",
    port: 20000,
    url: "http://127.0.0.1:20000",
  });
  assert.equal(parseUpstream("http://[::1]:20000/").url, "http://[::1]:20000");
  assert.equal(parseUpstream("http://gw-alice.tenants.svc:18789").host, "gw-alice.tenants.svc");
  for (const bad of [
    "unix:/var/lib/clawkeep/run/admin.sock",
    "http://unix:/var/lib/clawkeep/run/admin.sock:/",
    "http://unix:80",
    "http://UNIX:80",
    "https://127.0.0.1:20000",
    "http://127.0.0.1",
    "http://127.0.0.1:20000/admin",
    "http://127.0.0.1:20000/?x=1",
    "http://user:pw@127.0.0.1:20000",
    "http://127.0.0.1:20000; include /etc/passwd",
    "127.0.0.1:20000",
    "",
    42,
  ]) {
    invalid(() => parseUpstream(bad));
  }
});

test("routes: tenant names are DNS labels, unique and not reserved", () => {
  assert.deepEqual(validateRoutes([{ tenant: "alice", upstream: "http://127.0.0.1:20000/" }]), [
    { tenant: "alice", upstream: "http://127.0.0.1:20000" },
  ]);
  for (const tenant of ["api", "console", "../etc", "Alice", "a b", "alice.evil", "-x", ""]) {
    invalid(() => validateRoutes([{ tenant, upstream: "http://127.0.0.1:20000" }]));
  }
  invalid(() =>
    validateRoutes([
      { tenant: "alice", upstream: "http://127.0.0.1:20000" },
      { tenant: "alice", upstream: "http://127.0.0.1:20200" },
    ]),
  );
  invalid(() => renderEdge(config({ routes: [{ tenant: "x;y", upstream: "http://127.0.0.1:1" }] })));
});

test("domains, listen addresses, paths and limits are checked before they reach the config", () => {
  assert.equal(parseDomain("Clawkeep.Example.COM"), "clawkeep.example.com");
  for (const d of ["", "*.example.com", "example.com.", "exa mple.com", "a..b", "x;y", "-a.com"])
    invalid(() => parseDomain(d));
  assert.deepEqual(parseListen("127.0.0.1:8443"), { host: "127.0.0.1", port: 8443 });
  assert.deepEqual(parseListen("[::]:443"), { host: "::", port: 443 });
  assert.deepEqual(parseListen({ host: "[::1]", port: 443 }), { host: "::1", port: 443 });
  for (const l of ["localhost:443", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", ":443"])
    invalid(() => parseListen(l));
  assert.equal(assertSafePath("/var/lib/clawkeep/edge", "x"), "/var/lib/clawkeep/edge");
  for (const p of ["relative/x", "/a b", "/a;b", "/a/../b", "/a$b", "/a{b}", "/a\nb", "/a'b", '/a"b']) {
    invalid(() => assertSafePath(p, "x"));
  }
  invalid(() => renderEdge(config({ certFile: "/x.crt; ssl_protocols TLSv1" })));
  assert.equal(validateLimits({ clientBurst: 7 }).clientBurst, 7);
  invalid(() => validateLimits({ clientBurst: -1 }));
  invalid(() => validateLimits({ clientConnections: 70000 }));
  invalid(() => validateLimits({ maxBodyBytes: 1.5 }));
  invalid(() => validateLimits({ nope: 1 } as never));
  invalid(() => renderEdge(config({ user: "root;" })));
  invalid(() => renderEdge(config({ generation: "g 1" })));
});

test("IPv6 listen addresses are bracketed", () => {
  const { nginxConf } = renderEdge(config({ listen: { host: "::", port: 8443 } }));
  assert.match(nginxConf, /listen \[::\]:8443 ssl default_server;/);
});
