import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";

/**
 * The last lines of a text file (reading at most its last 64 KiB). Empty when the file is absent
 * or unreadable (an encrypted directory that is locked reads as absent).
 */
export async function tailFile(path: string, maxLines = 20): Promise<string> {
  try {
    const st = await stat(path);
    const chunks: Buffer[] = [];
    for await (const c of createReadStream(path, { start: Math.max(0, st.size - 64 * 1024) }))
      chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString("utf8").trimEnd().split("\n").slice(-maxLines).join("\n");
  } catch {
    return "";
  }
}
