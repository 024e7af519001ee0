/**
 * onShutdown: SIGTERM / SIGINT run the service's stop sequence once (stop intake, drain, close
 * bus and pool), bounded: past `timeoutMs` the process exits 1 rather than hang a rollout.
 */
import type { Logger } from '@hatch/log';

export interface ShutdownOptions {
  log: Logger;
  timeoutMs?: number;
  /** for tests: called instead of process.exit */
  exit?: (code: number) => void;
}

export function onShutdown(stop: (signal: string) => Promise<void>, opts: ShutdownOptions): () => void {
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  const timeoutMs = opts.timeoutMs ?? 10_000;
  let started = false;
  const handler = (signal: string) => {
    if (started) {
      // a terminal's Ctrl+C reaches the runner and every child: a repeat is expected, not news
      opts.log.debug({ signal }, 'second signal during shutdown; still draining');
      return;
    }
    started = true;
    opts.log.info({ signal, timeoutMs }, 'shutting down');
    const timer = setTimeout(() => {
      opts.log.error({ timeoutMs }, 'shutdown took too long; exiting');
      exit(1);
    }, timeoutMs);
    timer.unref();
    stop(signal).then(
      () => {
        clearTimeout(timer);
        opts.log.info('stopped');
        exit(0);
      },
      (err: unknown) => {
        clearTimeout(timer);
        opts.log.error({ err }, 'error during shutdown');
        exit(1);
      },
    );
  };
  const onTerm = () => handler('SIGTERM');
  const onInt = () => handler('SIGINT');
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  return () => {
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
  };
}
