/**
 * Everything a ring benchmark starts — rings of peer processes, temporary directories, the OpenDHT
 * anchor — registered here so it is stopped and removed on every way out: normal return, an error,
 * or Ctrl-C / SIGTERM / SIGHUP (after which the process exits with 128 + signal number).
 */

type Task = () => Promise<unknown> | unknown;

const SIGNALS = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 } as const;

/** Thrown by `add` once a signal has arrived: the benchmark must not start anything new. */
export class Interrupted extends Error {
  constructor(signal: string) {
    super(`interrupted by ${signal}`);
    this.name = 'Interrupted';
  }
}

export class Cleanup {
  readonly #tasks = new Map<number, { what: string; task: Task }>();
  #next = 0;
  #interrupted: string | undefined;
  #running: Promise<void> | undefined;
  #handlers: [NodeJS.Signals, () => void][] = [];
  readonly #log: (line: string) => void;

  constructor(log: (line: string) => void) {
    this.#log = log;
  }

  /** The signal that interrupted the run, if one did. */
  get interrupted(): string | undefined {
    return this.#interrupted;
  }

  /**
   * Registers a clean-up step; returns a function that runs it now (once) and unregisters it. After a
   * signal, the step runs at once and `add` throws Interrupted, so nothing new outlives the run.
   */
  add(what: string, task: Task): () => Promise<void> {
    if (this.#interrupted !== undefined) {
      const run = this.#run(what, task);
      this.#running = (this.#running ?? Promise.resolve()).then(() => run);
      throw new Interrupted(this.#interrupted);
    }
    const id = this.#next++;
    this.#tasks.set(id, { what, task });
    return async () => {
      const entry = this.#tasks.get(id);
      if (!entry) return;
      this.#tasks.delete(id);
      await this.#run(entry.what, entry.task);
    };
  }

  async #run(what: string, task: Task): Promise<void> {
    try {
      await task();
    } catch (err) {
      this.#log(`clean-up of ${what} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /**
   * Runs every registered step, newest first. A call while another is still running waits for it, so
   * whoever exits the process after `runAll` (the signal handler, or the suite's caller after an
   * error) does not cut a clean-up short.
   */
  runAll(): Promise<void> {
    const previous = this.#running ?? Promise.resolve();
    const run = previous.then(async () => {
      const entries = [...this.#tasks].reverse();
      this.#tasks.clear();
      for (const [, { what, task }] of entries) await this.#run(what, task);
    });
    this.#running = run;
    return run;
  }

  /** On a signal: clean up, then exit. A second signal while cleaning up exits at once. */
  installSignalHandlers(): void {
    for (const [name, number] of Object.entries(SIGNALS) as [NodeJS.Signals, number][]) {
      let received = false;
      const handler = () => {
        if (received) process.exit(128 + number);
        received = true;
        this.#interrupted = name;
        this.#log(`${name}: stopping every ring peer and removing temporary directories`);
        void this.runAll().finally(() => process.exit(128 + number));
      };
      process.on(name, handler);
      this.#handlers.push([name, handler]);
    }
  }

  removeSignalHandlers(): void {
    for (const [name, handler] of this.#handlers) process.off(name, handler);
    this.#handlers = [];
  }
}

/**
 * Runs a suite's bench with a Cleanup that stops every ring and process it started, also on Ctrl-C
 * or a failure, and returns its rows and targets.
 */
export async function runWithCleanup<B extends { run(): Promise<void>; readonly rows: unknown[]; readonly targets: unknown[] }>(
  name: string,
  progress: (line: string) => void,
  make: (cleanup: Cleanup) => B,
): Promise<{ rows: B['rows']; targets: B['targets'] }> {
  const cleanup = new Cleanup((line) => progress(`${name}: ${line}`));
  cleanup.installSignalHandlers();
  const bench = make(cleanup);
  try {
    await bench.run();
  } finally {
    await cleanup.runAll();
    cleanup.removeSignalHandlers();
  }
  return { rows: bench.rows, targets: bench.targets };
}
