/**
 * Makes `stop` idempotent (every call returns the first call's promise) and binds it to `signal`:
 * when the signal has already aborted it is called at once and awaited; otherwise it is called on
 * the signal's abort event. Returns the idempotent stop.
 */
export async function stopOnAbort(
  stop: () => Promise<void>,
  signal?: AbortSignal,
): Promise<() => Promise<void>> {
  let stopping: Promise<void> | undefined;
  const once = (): Promise<void> => {
    stopping ??= stop();
    return stopping;
  };
  if (signal) {
    if (signal.aborted) await once();
    else signal.addEventListener("abort", () => void once(), { once: true });
  }
  return once;
}
