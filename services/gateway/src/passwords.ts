/**
 * Password hashing for team accounts (issue 18).
 *
 * Why scrypt: it is memory-hard like argon2id and ships in Node's own `node:crypto` (OpenSSL), so
 * it needs no native build or new dependency in the image; OWASP's Password Storage Cheat Sheet
 * lists it as the choice where argon2id is not available. Parameters: OWASP's current minimum
 * for scrypt, N = 2^17, r = 8, p = 1: 128 × N × r = 128 MiB and ~0.3 s per hash here. The stored
 * string says which parameters made it (`$scrypt$ln=17,r=8,p=1$<salt>$<hash>`, base64 without
 * padding), so the parameters can be raised later: old hashes still verify with their own.
 *
 * Each hash holds 128 MiB for ~0.3 s, so the hashes running at once are bounded (`concurrency`)
 * and so are the sign-ins waiting for one (`queueMax`): past that the caller answers 503 +
 * Retry-After instead of letting a burst of sign-ins take the gateway's memory
 * (docs/architecture.md, rule 4).
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { retryLater, HttpError } from './errors.js';

export interface ScryptParams {
  /** log2 of N, the CPU/memory cost */
  ln: number;
  r: number;
  p: number;
}

/** OWASP Password Storage Cheat Sheet, scrypt: N = 2^17, r = 8, p = 1. */
export const SCRYPT_PARAMS: ScryptParams = { ln: 17, r: 8, p: 1 };

/** The parameters new hashes get: OWASP's, at the cost HATCH_PASSWORD_SCRYPT_LOG2N sets (17 unless a test lowers it). */
export const configuredScryptParams = (config: { HATCH_PASSWORD_SCRYPT_LOG2N: number }): ScryptParams => ({
  ...SCRYPT_PARAMS,
  ln: config.HATCH_PASSWORD_SCRYPT_LOG2N,
});
const KEY_BYTES = 32;
const SALT_BYTES = 16;

/** The memory one hash takes (scrypt's 128 × N × r bytes). */
export const scryptMemory = (p: ScryptParams): number => 128 * 2 ** p.ln * p.r;

function derive(password: string, salt: Buffer, params: ScryptParams): Promise<Buffer> {
  // Node refuses a hash whose memory passes maxmem (default 32 MiB): allow exactly this one's.
  const opts: ScryptOptions = { N: 2 ** params.ln, r: params.r, p: params.p, maxmem: scryptMemory(params) + 1024 * 1024 };
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, KEY_BYTES, opts, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

const b64 = (b: Buffer) => b.toString('base64').replace(/=+$/, '');
const ENCODED = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]{16,88})\$([A-Za-z0-9+/]{16,88})$/;

/** `$scrypt$ln=17,r=8,p=1$<salt>$<hash>` */
export async function hashPassword(password: string, params: ScryptParams = SCRYPT_PARAMS): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, params);
  return `$scrypt$ln=${params.ln},r=${params.r},p=${params.p}$${b64(salt)}$${b64(key)}`;
}

/**
 * Whether `password` matches the stored string; compared in constant time. A stored string this
 * code cannot read (or with parameters past sane bounds: a tampered row must not cost a
 * gigabyte) never matches.
 */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const m = ENCODED.exec(stored);
  if (!m) return false;
  const params = { ln: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
  if (params.ln < 10 || params.ln > 20 || params.r < 1 || params.r > 32 || params.p < 1 || params.p > 16) return false;
  const expected = Buffer.from(m[5] as string, 'base64');
  const key = await derive(password, Buffer.from(m[4] as string, 'base64'), params);
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/** Whether the stored hash was made with weaker parameters than today's (rehash on next sign-in). */
export function needsRehash(stored: string, params: ScryptParams = SCRYPT_PARAMS): boolean {
  const m = ENCODED.exec(stored);
  return !m || Number(m[1]) < params.ln || Number(m[2]) < params.r || Number(m[3]) < params.p;
}

/** Password rules (issue 18): at least 12 characters, at most 1024 bytes, not the email. */
export const PASSWORD_MIN_CHARS = 12;
export const PASSWORD_MAX_BYTES = 1024;

/** Throws 400 naming `body.password` when the password breaks a rule. */
export function checkPassword(password: string, email: string): void {
  const bad = (message: string) =>
    new HttpError('INVALID_REQUEST', `password ${message}`, { details: [{ field: 'body.password', message }] });
  if ([...password].length < PASSWORD_MIN_CHARS) throw bad(`must be at least ${PASSWORD_MIN_CHARS} characters`);
  if (Buffer.byteLength(password, 'utf8') > PASSWORD_MAX_BYTES) throw bad(`must be at most ${PASSWORD_MAX_BYTES} bytes`);
  if (password.trim().toLowerCase() === email.trim().toLowerCase()) throw bad('must not be the email address');
}

export interface PasswordHasherOptions {
  /** hashes running at once (each holds scryptMemory(params)) */
  concurrency: number;
  /** callers waiting for a slot; past it: 503 + Retry-After */
  queueMax: number;
  params?: ScryptParams;
}

export interface PasswordHasher {
  /** the parameters `hash` uses (a stored hash weaker than these is rehashed at sign-in) */
  readonly params: ScryptParams;
  hash(password: string): Promise<string>;
  verify(password: string, stored: string): Promise<boolean>;
  /** Verifies against a fixed hash: an unknown email costs what a known one does (no user enumeration by timing). */
  verifyNobody(password: string): Promise<false>;
}

/** Bounded hashing: a small semaphore with a bounded wait queue. */
export function createPasswordHasher(opts: PasswordHasherOptions): PasswordHasher {
  const params = opts.params ?? SCRYPT_PARAMS;
  let running = 0;
  const waiting: Array<() => void> = [];
  let dummy: Promise<string> | undefined;

  async function limited<T>(work: () => Promise<T>): Promise<T> {
    if (running >= opts.concurrency) {
      if (waiting.length >= opts.queueMax) throw retryLater('SERVICE_UNAVAILABLE', 'too many sign-ins at once; retry shortly', 1);
      await new Promise<void>((resolve) => waiting.push(resolve));
    } else running++;
    try {
      return await work();
    } finally {
      const next = waiting.shift();
      // the slot passes straight to the next waiter (running stays counted)
      if (next) next();
      else running--;
    }
  }

  return {
    params,
    hash: (password) => limited(() => hashPassword(password, params)),
    verify: (password, stored) => limited(() => verifyPassword(password, stored)),
    async verifyNobody(password) {
      dummy ??= limited(() => hashPassword(randomBytes(16).toString('hex'), params));
      const stored = await dummy;
      await limited(() => verifyPassword(password, stored));
      return false;
    },
  };
}
