import { isAbsolute, normalize } from "node:path";
import { VolumePathError } from "./errors.ts";

/**
 * Checks that `p` is an absolute, normalised path strictly below `root` with no NUL or control
 * characters, and returns it. Symlinks are resolved separately (LocalVolumes.#resolve).
 */
export function checkPathUnder(root: string, p: unknown, what: string): string {
  if (typeof p !== "string" || p.length === 0) throw new VolumePathError(`${what} path is required`, p);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(p)) {
    throw new VolumePathError(`${what} path ${JSON.stringify(p)} contains NUL or control characters`, p);
  }
  if (!isAbsolute(p)) throw new VolumePathError(`${what} path ${JSON.stringify(p)} is not absolute`, p);
  if (normalize(p) !== p || (p.length > 1 && p.endsWith("/"))) {
    throw new VolumePathError(
      `${what} path ${JSON.stringify(p)} is not normalised (no '.', '..', '//' or trailing '/')`,
      p,
    );
  }
  if (p.length > 4000) throw new VolumePathError(`${what} path is too long`, p);
  const r = root.endsWith("/") ? root : `${root}/`;
  if (!p.startsWith(r) || p.length === r.length) {
    throw new VolumePathError(`${what} path ${JSON.stringify(p)} is not under ${root}`, p);
  }
  return p;
}

/** Checks a configured root directory (absolute, normalised, not /) and returns it without a trailing '/'. */
export function checkRoot(root: string, what: string): string {
  if (
    typeof root !== "string" ||
    !isAbsolute(root) ||
    normalize(root) !== root ||
    root === "/" ||
    root.includes("\0")
  ) {
    throw new VolumePathError(`${what} must be an absolute, normalised directory other than /`, root);
  }
  return root.endsWith("/") ? root.slice(0, -1) : root;
}

/** Whether `p` lies strictly under `root`. */
export function isUnder(root: string, p: string): boolean {
  return p.startsWith(`${root}/`);
}
