import { readdir, readFile } from "node:fs/promises";
import { basename } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { ExecOptions } from "../../../lib/exec.ts";
import { VolumeError } from "./errors.ts";

/** Loop devices: which image is behind which device (sysfs), attaching and detaching (losetup). */

type Exec = (argv: readonly string[], opts?: ExecOptions) => Promise<string>;

/** The file behind a loop device, from sysfs; undefined when the device is not attached. */
export async function backingFileOf(loopDevice: string): Promise<string | undefined> {
  const name = basename(loopDevice);
  try {
    return (await readFile(`/sys/block/${name}/loop/backing_file`, "utf8")).replace(/\n$/, "");
  } catch {
    return undefined;
  }
}

/** Every loop device whose backing file is `image` (a resolved path). */
export async function loopDevicesOf(image: string): Promise<string[]> {
  let names: string[];
  try {
    names = (await readdir("/sys/block")).filter((n) => /^loop\d+$/.test(n));
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const n of names) {
    const backing = await backingFileOf(`/dev/${n}`);
    if (backing === image) out.push(`/dev/${n}`);
  }
  return out.sort();
}

/**
 * Attaches `image` to a free loop device (`losetup --find --show --nooverlap`) and returns the
 * device. Another process may take the free device between losetup's look-up and its claim: a
 * busy answer is retried (4 tries). Throws VolumeError("runtime_unavailable") otherwise.
 */
export async function attachLoop(
  exec: Exec,
  image: string,
  signal: AbortSignal | undefined,
): Promise<string> {
  // Another process may take the free device between losetup's look-up and its claim: retry.
  for (let attempt = 1; ; attempt++) {
    try {
      const out = await exec(["losetup", "--find", "--show", "--nooverlap", image], signal ? { signal } : {});
      const dev = out.trim();
      if (!/^\/dev\/loop\d+$/.test(dev))
        throw new VolumeError("runtime_failed", `losetup printed ${JSON.stringify(dev)}`);
      return dev;
    } catch (err) {
      const text = String((err as { stderr?: string }).stderr ?? "");
      if (attempt < 4 && /busy/i.test(text) && !signal?.aborted) continue;
      throw new VolumeError(
        "runtime_unavailable",
        `cannot attach ${image} to a loop device (are loop devices available and are we root?): ${(err as Error).message}`,
        { cause: err },
      );
    }
  }
}

/** Detaches a loop device; gone already is fine. */
export async function detachLoop(exec: Exec, loopDevice: string): Promise<void> {
  if (!/^\/dev\/loop\d+$/.test(loopDevice))
    throw new VolumeError("internal", `not a loop device: ${loopDevice}`);
  if ((await backingFileOf(loopDevice)) === undefined) return;
  try {
    await exec(["losetup", "--detach", loopDevice]);
  } catch (err) {
    if ((await backingFileOf(loopDevice)) === undefined) return;
    throw err;
  }
  // While something still holds the device open (a udev probe), the kernel only marks it for
  // detaching on last close: wait for that, briefly, so callers see it gone.
  for (let i = 0; i < 100 && (await backingFileOf(loopDevice)) !== undefined; i++) await sleep(20);
}
