import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";

/**
 * A scratch directory for the tests of one file: made under the OS temp directory (`prefix` and
 * random characters) in a `before` hook, and removed with everything in it in an `after` hook,
 * whether the tests passed or not. Call it at the top level of a test file; the returned function
 * gives the path (inside tests and hooks, once the directory exists).
 */
export function useTempDir(prefix: string): () => string {
  let dir: string | undefined;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), prefix));
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  return () => {
    if (dir === undefined)
      throw new Error(`the temporary directory ${prefix}* is made in a before hook: read it in a test`);
    return dir;
  };
}
