/** Helpers the benchmarks share; not a benchmark itself. */

/** The number after `--<name>` on the command line, or `dflt` when the option is not given. */
export function numberArg(name: string, dflt: number, argv: readonly string[] = process.argv): number {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : dflt;
}

/**
 * The end of a server script that a benchmark runs as a child (`node -e`/`--input-type=module`):
 * listens the `http.Server` named `s` on a random 127.0.0.1 port above 41000 (20000-40000 belong to
 * tenant gateways), tries another while the port is in use, and prints `{"port": N}` once it listens.
 */
export const LISTEN_AND_PRINT_PORT = `
// Ports 20000-40000 belong to tenant gateways: pick one above.
const tryListen = () => s.listen(41000 + Math.floor(Math.random() * 19000), "127.0.0.1");
s.on("error", (err) => { if (err.code === "EADDRINUSE") tryListen(); else throw err; });
s.on("listening", () => console.log(JSON.stringify({ port: s.address().port })));
tryListen();
`;

/**
 * Runs `op` back to back from `concurrency` callers for `ms` milliseconds (each caller finishes the
 * operation under way) and returns the completed operations per second of wall time.
 */
export async function opsPerSecond(op: () => unknown, ms: number, concurrency: number): Promise<number> {
  let n = 0;
  const t0 = performance.now();
  const end = t0 + ms;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        await op();
        n++;
      }
    }),
  );
  return n / ((performance.now() - t0) / 1000);
}
