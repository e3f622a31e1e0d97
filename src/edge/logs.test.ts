import assert from "node:assert/strict";
import { test } from "node:test";
import { parseAuditLog, parseLimitLog } from "./logs.ts";

const audit = (uniqueId: string, code: number, ruleIds: string[], uri = "/?q=1'%20or%201=1--") =>
  JSON.stringify({
    transaction: {
      client_ip: "203.0.113.9",
      time_stamp: "Sat Nov 28 19:46:50 2026",
      unique_id: uniqueId,
      request: { method: "GET", http_version: 1.1, uri },
      response: { http_code: code },
      messages: ruleIds.map((id) => ({
        message: `rule ${id}`,
        details: {
          ruleId: id,
          data: id === "942100" ? "Matched Data: s&1c found within ARGS:q: 1' or 1=1--" : "",
        },
      })),
    },
  });

test("parseAuditLog returns the WAF blocks of one tenant with the rules that matched", () => {
  const text = [
    audit("alice:abc", 403, ["942100", "949110"]),
    audit("alice2:def", 403, ["942100", "949110"]),
    audit("bob:ghi", 403, ["941100", "949110"]),
    audit("alice:jkl", 200, ["920350"], "/warned-but-passed"),
    audit("alice:mno", 400, ["200002"], "/v1/items"),
    "not json",
    "",
  ].join("\n");
  const events = parseAuditLog(text, "alice");
  assert.equal(events.length, 2);
  const [sqli, body] = events;
  assert.equal(sqli!.kind, "waf");
  assert.equal(sqli!.status, 403);
  assert.equal(sqli!.tenant, "alice");
  assert.equal(sqli!.client, "203.0.113.9");
  assert.equal(sqli!.method, "GET");
  assert.equal(sqli!.uri, "/?q=1'%20or%201=1--");
  assert.deepEqual(
    sqli!.rules.map((r) => r.id),
    ["942100", "949110"],
  );
  assert.match(sqli!.rules[0]!.data, /ARGS:q/);
  assert.ok(!Number.isNaN(Date.parse(sqli!.time)));
  assert.equal(body!.status, 400);
  assert.deepEqual(
    parseAuditLog(text, "bob").map((e) => e.uri),
    ["/?q=1'%20or%201=1--"],
  );
  assert.deepEqual(parseAuditLog(text, "carol"), []);
});

test("parseLimitLog reads nginx's rate and connection refusals", () => {
  const text = [
    '2026/11/28 19:46:50 [error] 32073#32073: *12 limiting requests, excess: 5.320 by zone "ck_client_req", client: 127.0.0.11, server: alice.edge.test, request: "GET /x?y=1 HTTP/1.1", host: "alice.edge.test"',
    '2026/11/28 19:46:51 [error] 32073#32073: *13 limiting connections by zone "ck_client_conn", client: 127.0.0.50, server: alice.edge.test, request: "GET /slow HTTP/1.1", host: "alice.edge.test"',
    "2026/11/28 19:46:52 [error] 32073#32073: *14 connect() failed (111: Connection refused) while connecting to upstream",
  ].join("\n");
  const events = parseLimitLog(text, "alice");
  assert.deepEqual(
    events.map((e) => [e.kind, e.status, e.client, e.method, e.uri]),
    [
      ["rate", 429, "127.0.0.11", "GET", "/x?y=1"],
      ["connections", 429, "127.0.0.50", "GET", "/slow"],
    ],
  );
  assert.ok(events.every((e) => e.tenant === "alice" && !Number.isNaN(Date.parse(e.time))));
});
