// "Run until a signal, then clean up once": the shape every long-running command shares
// (serve, tail, events). SIGINT/SIGTERM or stop() end the run; the cleanup runs exactly once
// however many of them arrive; the signal listeners are removed afterwards.

export type Stop = (err?: Error) => void;

export interface UntilSignalOptions {
  /** Called once with the signal's name before the cleanup (e.g. to log "shutting down"). */
  onSignal?: (signal: NodeJS.Signals) => void;
  signals?: readonly NodeJS.Signals[];
}

/**
 * Resolves with the cleanup's number (0 when it returns none) after SIGINT/SIGTERM or a bare
 * stop(); rejects with the error given to stop(err) once the cleanup ran. `arm` receives
 * stop() to wire the run's own ways of ending (a fatal client error, EPIPE on stdout).
 */
export function untilSignal(cleanup: () => unknown, arm?: (stop: Stop) => void, opts: UntilSignalOptions = {}): Promise<number> {
  const signals = opts.signals ?? ['SIGINT', 'SIGTERM'];
  return new Promise<number>((resolve, reject) => {
    let finished = false;
    const finish = (err?: Error): void => {
      if (finished) return;
      finished = true;
      for (const s of signals) process.off(s, onSignal);
      Promise.resolve()
        .then(cleanup)
        .then((code) => (err ? reject(err) : resolve(typeof code === 'number' ? code : 0)), reject);
    };
    const onSignal = (signal: NodeJS.Signals): void => {
      if (finished) return;
      opts.onSignal?.(signal);
      finish();
    };
    for (const s of signals) process.on(s, onSignal);
    arm?.(finish);
  });
}

/** stdout closed by the reader (`| head`): end quietly; any other write error ends the run with it. */
export function onStdoutClosed(stop: Stop): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => stop(err.code === 'EPIPE' ? undefined : err));
}
