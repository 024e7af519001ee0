/**
 * The supervising half of `pnpm start` (scripts/start.mjs plans what to run; this runs it): one
 * child per service, each output line prefixed by the padded service name, pino JSON shown
 * compactly on a terminal; stopped on a signal within a bound, every child with it.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const SHUTDOWN_BOUND_MS = 10_000;
const RUNNER = 'hatch';

/* ------------------------------------------------------------------------------------------ */
/* output                                                                                     */
/* ------------------------------------------------------------------------------------------ */

const PALETTE = [36, 35, 33, 32, 34, 96, 95, 93];
const LEVELS = { 10: ['TRACE', 90], 20: ['DEBUG', 90], 30: ['INFO ', 32], 40: ['WARN ', 33], 50: ['ERROR', 31], 60: ['FATAL', 41] };
const paint = (on, code, s) => (on ? `\x1b[${code}m${s}\x1b[0m` : s);

/** A pino JSON line as `12:00:01.234 INFO  msg key=value …`; anything else unchanged. */
export function compactLogLine(line, color) {
  if (!line.startsWith('{')) return line;
  let o;
  try {
    o = JSON.parse(line);
  } catch {
    return line;
  }
  if (typeof o !== 'object' || o === null || typeof o.level !== 'number' || typeof o.msg !== 'string') return line;
  const { level, time, msg, pid: _pid, hostname: _host, service: _service, ...rest } = o;
  const d = new Date(time ?? Date.now());
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  const ts = Number.isNaN(d.getTime())
    ? ''
    : `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)} `;
  const [name, code] = LEVELS[level] ?? [String(level).padEnd(5), 0];
  const fields = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${paint(color, 90, ts)}${paint(color, code, name)} ${msg}${fields ? ` ${paint(color, 90, fields)}` : ''}`;
}

/* ------------------------------------------------------------------------------------------ */
/* running                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/**
 * Runs `services` ([{ name, cmd, args, env?, cwd? }]) until a signal or an unexpected exit;
 * resolves with the exit code for the runner (0 only when every child stopped cleanly on request).
 */
export function runServices(services, opts = {}) {
  const out = opts.stdout ?? process.stdout;
  const errOut = opts.stderr ?? process.stderr;
  const color = opts.color ?? (out.isTTY === true && !process.env.NO_COLOR);
  const compact = opts.compact ?? color;
  const boundMs = opts.boundMs ?? SHUTDOWN_BOUND_MS;
  const cwd = opts.cwd ?? ROOT;
  const width = Math.max(RUNNER.length, ...services.map((s) => s.name.length));
  const prefix = (name, i) => paint(color, i < 0 ? 1 : PALETTE[i % PALETTE.length], `${name.padEnd(width)} |`) + ' ';
  const say = (msg) => out.write(`${prefix(RUNNER, -1)}${msg}\n`);
  for (const n of opts.notes ?? []) say(n);
  say(`starting ${services.map((s) => s.name).join(', ')}`);

  return new Promise((resolve) => {
    let stopping = false;
    let failed = false;
    let killTimer;
    const procs = services.map((s, i) => {
      const p = { name: s.name, done: false, code: null, signal: null };
      const child = spawn(s.cmd, s.args ?? [], { cwd: s.cwd ?? cwd, env: s.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
      p.child = child;
      const pipe = (stream, to) => {
        const rl = readline.createInterface({ input: stream, crlfDelay: Infinity });
        rl.on('line', (line) => to.write(`${prefix(s.name, i)}${compact ? compactLogLine(line, color) : line}\n`));
      };
      pipe(child.stdout, out);
      pipe(child.stderr, errOut);
      child.once('error', (err) => {
        say(`${s.name} could not start: ${err.message}`);
        finish(p, 127, null);
      });
      child.once('exit', (code, signal) => finish(p, code, signal));
      return p;
    });

    const live = () => procs.filter((p) => !p.done);

    function stopAll(sig) {
      for (const p of live()) p.child.kill(sig);
    }

    function shutdown() {
      if (stopping) return;
      stopping = true;
      stopAll('SIGTERM');
      killTimer = setTimeout(() => {
        failed = true;
        say(
          `still running after ${boundMs / 1000} s: ${live()
            .map((p) => p.name)
            .join(', ')}; killing`,
        );
        stopAll('SIGKILL');
      }, boundMs);
    }

    function finish(p, code, signal) {
      if (p.done) return;
      p.done = true;
      p.code = code;
      p.signal = signal;
      const how = signal ? `signal ${signal}` : `code ${code}`;
      if (!stopping) {
        failed = true;
        say(`${p.name} exited unexpectedly (${how}); stopping the others`);
        shutdown();
      } else {
        if (code !== 0) failed = true;
        say(`${p.name} stopped (${how})`);
      }
      if (live().length === 0) {
        clearTimeout(killTimer);
        for (const s of SIGNALS) process.off(s, onSignal);
        resolve(failed ? 1 : 0);
      }
    }

    const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'];
    function onSignal(sig) {
      if (stopping) {
        failed = true;
        say(
          `${sig} again: killing ${live()
            .map((p) => p.name)
            .join(', ')}`,
        );
        stopAll('SIGKILL');
        return;
      }
      say(`${sig}: stopping (up to ${boundMs / 1000} s)`);
      shutdown();
    }
    for (const s of SIGNALS) process.on(s, onSignal);
  });
}
