import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { execFile } from "../../../lib/exec.ts";
import { isMountPoint } from "../volume/mounts.ts";

/**
 * Mounts a driver's secrets tmpfs at `dir` (0700, nosuid, nodev, noexec, `sizeMiB`) unless one is
 * mounted there, and makes its `bundles/` directory (0700). Bundles (config.json holds a
 * gateway's environment, secrets included), runtime state and process files live on it, never on
 * a disk. Idempotent.
 */
export async function mountSecretsTmpfs(
  dir: string,
  opts: { source: string; sizeMiB: number },
): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (!(await isMountPoint(dir))) {
    await execFile([
      "mount",
      "-t",
      "tmpfs",
      "-o",
      `mode=0700,size=${opts.sizeMiB}m,nosuid,nodev,noexec`,
      opts.source,
      dir,
    ]);
  }
  await mkdir(join(dir, "bundles"), { recursive: true, mode: 0o700 });
}

/** Unmounts the secrets tmpfs at `dir` when one is mounted there; errors are ignored. */
export async function unmountSecretsTmpfs(dir: string): Promise<void> {
  if (await isMountPoint(dir)) await execFile(["umount", dir]).catch(() => {});
}
