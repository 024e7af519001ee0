/**
 * createLogger: pino JSON to stdout with a `service` base field, secrets redacted, pretty only
 * on a TTY. Components take `log.child({ component })`.
 */
import { createRequire } from 'node:module';
import { pino, type Logger, type LoggerOptions } from 'pino';
import type PinoPretty from 'pino-pretty';

export type { Logger } from 'pino';

/** Paths pino redacts wherever they appear in a log object (headers, configs, SDK errors). */
export const REDACT_PATHS = [
  'authorization',
  'cookie',
  'token',
  'password',
  'apiKey',
  'authToken',
  '*.authorization',
  '*.Authorization',
  '*.cookie',
  '*.Cookie',
  '*["set-cookie"]',
  '*.token',
  '*.password',
  '*.apiKey',
  '*.authToken',
  '*.HATCH_API_TOKEN',
  '*.TWILIO_AUTH_TOKEN',
  '*.SENDGRID_API_KEY',
  '*.DATABASE_URL',
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-twilio-signature"]',
  'res.headers["set-cookie"]',
];

export interface CreateLoggerOptions {
  service: string;
  level?: string;
  /** Where lines go; defaults to stdout. Tests pass a stream to read what was logged. */
  destination?: NodeJS.WritableStream;
  pretty?: boolean;
}

export function createLogger(opts: CreateLoggerOptions): Logger {
  const options: LoggerOptions = {
    level: opts.level ?? 'info',
    base: { service: opts.service },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  const pretty = opts.pretty ?? (opts.destination === undefined && process.stdout.isTTY === true);
  if (pretty) return pino(options, loadPretty()({ colorize: true, translateTime: 'SYS:HH:MM:ss.l', sync: true }));
  if (opts.destination) return pino(options, opts.destination as pino.DestinationStream);
  return pino(options);
}

/**
 * pino-pretty in-process, loaded only on a TTY. Not a pino transport: a transport runs in a
 * worker thread whose file pino finds through `__dirname`, which a service's bundled
 * dist/main.js (scripts/bundle.mjs) does not have. In the bundle `require` exists and esbuild
 * bundles this literal call (evaluated only here); native ESM (tsx, tsc output) has none.
 */
function loadPretty(): typeof PinoPretty {
  const mod = (typeof require === 'function' ? require('pino-pretty') : createRequire(import.meta.url)('pino-pretty')) as typeof PinoPretty & { default?: typeof PinoPretty };
  return mod.default ?? mod;
}
