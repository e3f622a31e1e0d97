import { openReadNoFollow } from "./safefs.ts";

/**
 * The last lines of a text file (reading at most its last 64 KiB). Empty when the file is absent,
 * unreadable (an encrypted directory that is locked reads as absent) or a symlink: tenants own the
 * directories these logs live in, and a planted link must not make root read another file.
 */
export async function tailFile(path: string, maxLines = 20): Promise<string> {
  let fh: Awaited<ReturnType<typeof openReadNoFollow>> | undefined;
  try {
    fh = await openReadNoFollow(path);
    const { size } = await fh.stat();
    const len = Math.min(size, 64 * 1024);
    const buf = Buffer.alloc(len);
    await fh.read(buf, 0, len, size - len);
    return buf.toString("utf8").trimEnd().split("\n").slice(-maxLines).join("\n");
  } catch {
    return "";
  } finally {
    await fh?.close();
  }
}
