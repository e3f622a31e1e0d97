import assert from "node:assert/strict";
import { test } from "node:test";
import { isServiceError } from "./errors.ts";
import { type Child, type SuperviseOptions, supervise } from "./supervisor.ts";

/** argv of a node child running `script`. */
const node = (script: string) => [process.execPath, "-e", script];
/** Ready when the child prints "ready"; fails when it exits first. */
const readyLine = (c: Child) =>
  new Promise<string>((resolve, reject) => {
    c.onLine((l) => {
      if (l.startsWith("ready")) resolve(l);
    });
    void c.exited.then((e) => reject(new Error(`exited (${e.signal ?? e.code}) before it was ready`)));
  });
/** Supervises a node child running `script`, ready once it prints "ready" (within 10 s), its output ignored. */
const superviseScript = (name: string, script: string, more: Partial<SuperviseOptions<string>> = {}) =>
  supervise({
    name,
    argv: node(script),
    output: "ignore",
    ready: readyLine,
    readyTimeoutMs: 10_000,
    ...more,
  });
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const until = async (f: () => boolean, what: string, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

test("a child that dies is restarted with exponential backoff; without restart it is not", async () => {
  const delays: number[] = [];
  const sup = await superviseScript(
    "dier",
    `console.log("ready " + process.pid); setTimeout(() => process.exit(3), 30);`,
    {
      restart: { initialMs: 40, maxMs: 160 },
      onRestart: (i) => {
        assert.equal(i.code, 3);
        delays.push(i.delayMs);
      },
    },
  );
  try {
    await until(() => delays.length >= 4, "four restarts");
    assert.deepEqual(delays.slice(0, 4), [40, 80, 160, 160], "doubling, capped at maxMs");
    assert.ok(sup.restarts >= 4);
  } finally {
    await sup.stop();
  }
  assert.equal(sup.state, "stopped");
  const after = sup.restarts;
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(sup.restarts, after, "stop() ends the restarts");

  const once = await superviseScript("dier", `console.log("ready"); setTimeout(() => process.exit(3), 30);`);
  assert.deepEqual(await once.exited, { code: 3, signal: null }, "control: no restart policy, no restart");
  assert.equal(once.restarts, 0);
  assert.equal(once.state, "stopped");
  await assert.rejects(once.ready(), (e: unknown) => isServiceError(e, "stopped"));
});

test("maxRestarts and isFatal turn restarts into state failed, with onFatal", async () => {
  const fatals: string[] = [];
  const sup = await superviseScript("dier", `console.log("ready"); setTimeout(() => process.exit(3), 30);`, {
    restart: { initialMs: 10, maxMs: 10, maxRestarts: 2 },
    onFatal: (e) => fatals.push(e.message),
  });
  await sup.exited;
  assert.equal(sup.state, "failed");
  assert.equal(sup.restarts, 2);
  assert.match(fatals[0] ?? "", /dier died 3 times in a row \(status 3\)/);
  await assert.rejects(sup.ready(), /died 3 times/);

  let starts = 0;
  const fatal = await supervise({
    name: "once-good",
    // The first start is ready and dies; every later one fails in a way a restart cannot fix.
    argv: node(`console.log("ready"); setTimeout(() => process.exit(1), 30);`),
    output: "ignore",
    ready: () => {
      starts++;
      return starts === 1 ? Promise.resolve("") : Promise.reject(new Error("corrupt model"));
    },
    readyTimeoutMs: 10_000,
    restart: { initialMs: 10, maxMs: 10 },
    isFatal: (e) => (e as Error).message === "corrupt model",
  });
  await fatal.exited;
  assert.equal(fatal.state, "failed");
  assert.equal(fatal.failure?.message, "corrupt model");
  assert.equal(starts, 2, "no attempt after a fatal start");
});

test("stop(): SIGTERM first; a child that ignores it is SIGKILLed after the grace period", async () => {
  const polite = await superviseScript("polite", `console.log("ready"); setInterval(() => {}, 1000);`);
  const t0 = Date.now();
  await polite.stop(5_000);
  assert.deepEqual(await polite.exited, { code: null, signal: "SIGTERM" }, "control: TERM is enough");
  assert.ok(Date.now() - t0 < 4_000);

  const stubborn = await superviseScript(
    "stubborn",
    `process.on("SIGTERM", () => {}); console.log("ready"); setInterval(() => {}, 1000);`,
  );
  const pid = stubborn.pid!;
  const t1 = Date.now();
  await stubborn.stop(300);
  assert.deepEqual(await stubborn.exited, { code: null, signal: "SIGKILL" });
  assert.ok(Date.now() - t1 >= 290, "it waited for the grace period first");
  assert.equal(alive(pid), false);
});

test("a readiness time-out carries the child's stderr tail and kills it; a ready child is not killed", async () => {
  let pid: number | undefined;
  await assert.rejects(
    supervise({
      name: "silent",
      argv: node(`console.error("loading the-marker-line"); setInterval(() => {}, 1000);`),
      output: "ignore",
      ready: (c) => {
        pid = c.pid;
        return new Promise<never>(() => {});
      },
      readyTimeoutMs: 500,
    }),
    (e: unknown) =>
      isServiceError(e, "start_failed") &&
      /silent was not ready within 500 ms:\nloading the-marker-line/.test(e.message),
  );
  await until(() => pid !== undefined && !alive(pid), "the unready child to be killed", 3_000);

  const ok = await superviseScript(
    "talker",
    `console.error("loading"); console.log("ready"); setInterval(() => {}, 1000);`,
  );
  try {
    assert.equal(ok.state, "running", "control: a child that is ready in time runs");
    assert.ok(alive(ok.pid!));
    assert.equal(ok.tail(), "loading");
  } finally {
    await ok.stop();
  }
});
