/**
 * Runs a callback that belongs to someone else (an event listener, the backend) where its failure,
 * thrown or rejected, must not end the connection that called it.
 */
export function safely(fn: () => unknown): void {
  try {
    const result = fn();
    if (result instanceof Promise) result.catch(() => undefined);
  } catch {
    // deliberately ignored: see above
  }
}
