import { open, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { pidsOfUid } from "../src/lib/procfs.ts";

/** Why a root-only integration test cannot run here, or undefined when it can. */
export function needsRoot(): string | undefined {
  return process.getuid?.() === 0
    ? undefined
    : "needs root (CI runs as root): it creates tenant uids and directories";
}

/** The main OpenClaw gateway processes (process title "openclaw-gateway") of a uid. */
export async function gatewayProcesses(uid: number): Promise<number[]> {
  const out: number[] = [];
  for (const pid of await pidsOfUid(uid)) {
    const cmd = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (cmd.startsWith("openclaw-gateway")) out.push(pid);
  }
  return out;
}

export interface ChatResult {
  status: number;
  text: string;
  content: string | undefined;
}

/** One chat through a gateway's OpenAI-compatible endpoint. */
export async function chat(
  url: string,
  token: string,
  message: string,
  timeoutMs = 120_000,
): Promise<ChatResult> {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "openclaw", messages: [{ role: "user", content: message }] }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  let content: string | undefined;
  try {
    content = (JSON.parse(text) as { choices?: { message?: { content?: string } }[] }).choices?.[0]?.message
      ?.content;
  } catch {
    content = undefined;
  }
  return { status: res.status, text, content };
}

/** Every regular file below dir (no symlinks followed, mounts included). */
export async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** Names of the needles found in a file, read in overlapping chunks (files may be large and sparse). */
export async function scanFile(path: string, needles: Record<string, Buffer>): Promise<string[]> {
  const found = new Set<string>();
  const overlap = Math.max(...Object.values(needles).map((n) => n.length));
  const fh = await open(path, "r").catch(() => undefined);
  if (!fh) return [];
  try {
    const chunk = Buffer.alloc(8 * 1024 * 1024);
    let pos = 0;
    let carry = Buffer.alloc(0);
    for (;;) {
      const { bytesRead } = await fh.read(chunk, 0, chunk.length, pos);
      if (bytesRead === 0) break;
      const buf = Buffer.concat([carry, chunk.subarray(0, bytesRead)]);
      for (const [name, n] of Object.entries(needles))
        if (!found.has(name) && buf.includes(n)) found.add(name);
      carry = Buffer.from(buf.subarray(Math.max(0, buf.length - overlap + 1)));
      pos += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return [...found];
}
