/**
 * Bad input never gets a 5xx, fuzzed (issue 14 §3): a real listening gateway, raw sockets, at
 * least 10,000 generated requests against the /api routes and the webhooks: mutated request
 * targets, methods, header values (Authorization, Cookie, Content-Type, Content-Length lies,
 * chunked bodies, Idempotency-Key), query strings, JSON and form bodies (wrong types, huge
 * numbers, deep nesting, unicode edge cases, prototype keys, 1 MiB strings), some pipelined on
 * keep-alive connections. Most carry a valid credential (and valid webhook signatures) so they
 * reach the handlers.
 *
 * Oracle: no 5xx; no stack trace in any body; every non-2xx JSON body in the contract's error
 * shape; the process alive afterwards and its heap back near its start; nothing stored by a
 * refused request (every messages / emails row and every job is owed to a 2xx answer counted
 * here, and every 2xx answer's row exists).
 *
 * Reproducible: HATCH_FUZZ_SEED=<seed> (printed) replays the same requests; HATCH_FUZZ_CASES=3,17
 * runs only those cases (each case draws from its own PRNG, derived from the seed and its index).
 * HATCH_FUZZ_REQUESTS sets how many requests (default 10,000); HATCH_FUZZ_LOG_LEVEL=error shows
 * the gateway's own log of what failed (pino JSON, mixed into the test output);
 * HATCH_FUZZ_EXAMPLES how many failing requests to print per kind of failure (default 4);
 * HATCH_FUZZ_SHOW how many characters of each printed value (default 300).
 * A replayed case is the same request but for this run's record ids and the clock (signed
 * webhook timestamps).
 */
import t from 'tap';
import type { AddressInfo } from 'node:net';
import { generateKeyPairSync, randomInt, sign } from 'node:crypto';
import v8 from 'node:v8';
import vm from 'node:vm';
import twilio from 'twilio';
import { waitFor } from '@hatch/testing';
import { testGateway, TEST_TOKEN } from './helpers.js';
import { rawPipeline, rawRequest, type RawRequest, type RawResponse } from './raw-http.js';

const SEED = process.env.HATCH_FUZZ_SEED ? Number(process.env.HATCH_FUZZ_SEED) >>> 0 : randomInt(2 ** 32);
const REQUESTS = Number(process.env.HATCH_FUZZ_REQUESTS ?? 10_000);
const ONLY = process.env.HATCH_FUZZ_CASES ? new Set(process.env.HATCH_FUZZ_CASES.split(',').map(Number)) : undefined;
/** failing requests printed in full per kind of failure */
const EXAMPLES = Number(process.env.HATCH_FUZZ_EXAMPLES ?? 4);
/** sockets open at once: enough to overlap requests, well inside every documented bound */
const CONCURRENCY = 16;

const PUBLIC = 'https://hatch.example.test';
const TWILIO_TOKEN = 'fuzz-twilio-auth-token';
const SMS_FROM = '+15005550006';
const { privateKey: SG_KEY, publicKey: sgPublic } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const SG_PUBLIC_KEY = sgPublic.export({ type: 'spki', format: 'der' }).toString('base64');
const SG_OTHER_KEY = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
const SG_SIG = 'x-twilio-email-event-webhook-signature';
const SG_TS = 'x-twilio-email-event-webhook-timestamp';

// ---- a small seeded PRNG (mulberry32) --------------------------------------------------------

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

class Rng {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  /** 0 ≤ n < max */
  int(max: number): number {
    return Math.floor(this.next() * max);
  }
  range(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)] as T;
  }
}

/** Each case's own stream: case i is the same for a seed whatever ran before it. */
const caseRng = (i: number) => new Rng(Math.imul(SEED ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(i + 1, 0xc2b2ae35));

// ---- JSON with what JSON.stringify cannot write: raw literals, duplicate keys ------------------

class Raw {
  constructor(readonly text: string) {}
}
class Obj {
  constructor(readonly entries: Array<[string, J]>) {}
}
type J = null | boolean | number | string | Raw | Obj | J[];

function emit(v: J): string {
  if (v instanceof Raw) return v.text;
  if (v instanceof Obj) return `{${v.entries.map(([k, x]) => `${JSON.stringify(k)}:${emit(x)}`).join(',')}}`;
  if (Array.isArray(v)) return `[${v.map(emit).join(',')}]`;
  return JSON.stringify(v);
}

const MIB = 1024 * 1024;
const UUIDISH = [
  '00000000-0000-0000-0000-000000000000',
  'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF',
  '0a0a0a0a-0a0a-4a0a-8a0a-0a0a0a0a0a0a',
  '0a0a0a0a0a0a4a0a8a0a0a0a0a0a0a0a',
  '{0a0a0a0a-0a0a-4a0a-8a0a-0a0a0a0a0a0a}',
];
const EDGE_STRINGS = [
  '',
  ' ',
  '\t',
  '\n',
  'a',
  '0',
  '-1',
  'null',
  'true',
  'undefined',
  'NaN',
  '\u0000',
  'a\u0000b',
  '\ud800',
  '\udfff',
  'x\ud83dy',
  '\udc00\ud800',
  '\ud83d\ude00',
  '\ufeff',
  '\u202e',
  '\u2028\u2029',
  '\r\n',
  'a\rb',
  '\u0085',
  '\u001b[31m',
  'e\u0301',
  'ß',
  'İ',
  'ﬃ',
  '𝕏',
  '张伟',
  'Ω',
  '\uffff',
  '\ufffe',
  '\u200d',
  '🏳️‍🌈',
  '%00',
  '%zz',
  '%',
  '../../etc/passwd',
  '<script>alert(1)</script>',
  "' OR 1=1 --",
  '${7*7}',
  '{{7*7}}',
  '\\',
  '"',
  "'",
  '\\u0000',
  '+15551234567',
  '+1555123456',
  '+0000000000',
  '+1 555 123 4567',
  '4155550100',
  '(415) 555-0100',
  '+1555123456789012',
  '++15551234567',
  '+',
  'Room 101',
  'bob',
  'a@example.com',
  'A@EXAMPLE.COM',
  'a@b',
  '@',
  'a@example.com\r\nBcc: x@y.z',
  'a@example.com, b@example.com',
  '"a b"@example.com',
  ...UUIDISH,
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'valueOf',
  'x'.repeat(65),
  'x'.repeat(201),
  'x'.repeat(1601),
  'é'.repeat(1000),
  '😀'.repeat(700),
  'text/plain',
  'application/pdf',
  'a.txt',
  'QUJD',
  '====',
  'QUJD\n',
  'AAAA'.repeat(300),
  'delivered',
  'failed',
  'sent',
  'queued',
  'bounce',
  'dropped',
  'processed',
  'open',
  'click',
];
const NUMBER_LITERALS = [
  '0',
  '-0',
  '1',
  '-1',
  '1.5',
  '1e308',
  '-1e308',
  '1e309',
  '-1e400',
  '1e-400',
  '9007199254740993',
  '123456789012345678901234567890',
  '0.0000001',
  '2147483648',
  '-2147483649',
  '4294967296',
  '1E2',
  '1e+2',
  '200',
  '201',
  '50',
];
const PROTO_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', '__defineGetter__', 'valueOf'];

/** Lone surrogates replaced by U+FFFD, as UTF-8 encoding does (what the server will decode). */
const wf = (s: string) => Buffer.from(s, 'utf8').toString('utf8');

function randomString(r: Rng, max = 40): string {
  const n = r.int(max + 1);
  let s = '';
  for (let i = 0; i < n; i++) {
    switch (r.int(7)) {
      case 0:
        s += String.fromCharCode(r.int(0x20)); // C0 controls, NUL included
        break;
      case 1:
        s += String.fromCharCode(0x80 + r.int(0x80)); // C1 and Latin-1
        break;
      case 2:
        s += String.fromCharCode(0xd800 + r.int(0x800)); // a lone surrogate
        break;
      case 3:
        s += String.fromCodePoint(0x10000 + r.int(0xfffff)); // astral
        break;
      case 4:
        s += String.fromCharCode(0x100 + r.int(0xd700)); // BMP
        break;
      default:
        s += String.fromCharCode(0x20 + r.int(0x5f)); // printable ASCII
    }
  }
  return s;
}

function junkString(r: Rng): string {
  const k = r.int(100);
  if (k < 1) return 'x'.repeat(MIB); // 1 MiB
  if (k < 2) return '\u00e9'.repeat(32 * 1024 + r.int(1000)); // 64 KiB of UTF-8, around the body limit
  if (k < 3) return 'A'.repeat(r.range(1000, 20_000));
  if (k < 55) return r.pick(EDGE_STRINGS);
  if (k < 75) return randomString(r);
  // an edge string with junk around it
  return `${randomString(r, 4)}${r.pick(EDGE_STRINGS)}${randomString(r, 4)}`;
}

function deepNesting(r: Rng): Raw {
  const n = r.pick([100, 1000, 10_000, 50_000, 200_000]);
  const [open, close] = r.pick([
    ['[', ']'],
    ['{"a":', '}'],
    ['{"to":', '}'],
  ]);
  return new Raw(`${open.repeat(n)}${r.chance(0.5) ? '1' : 'null'}${close.repeat(r.chance(0.9) ? n : n - 1)}`);
}

function junkValue(r: Rng, depth = 0): J {
  const k = r.int(100);
  if (k < 35) return junkString(r);
  if (k < 50) return new Raw(r.pick(NUMBER_LITERALS));
  if (k < 55) return r.chance(0.5);
  if (k < 60) return null;
  if (k < 63) return deepNesting(r);
  if (depth > 3) return junkString(r);
  if (k < 80) return Array.from({ length: r.int(5) }, () => junkValue(r, depth + 1));
  if (k < 82) return Array.from({ length: r.pick([1000, 10_001]) }, () => r.int(10)); // long arrays
  return new Obj(
    Array.from(
      { length: r.int(5) },
      () => [r.chance(0.3) ? r.pick(PROTO_KEYS) : junkString(r).slice(0, 50), junkValue(r, depth + 1)] as [string, J],
    ),
  );
}

/** 0-3 changes to a valid object: a field of the wrong type or value, removed, duplicated, or a prototype key. */
function mutateObject(r: Rng, obj: Obj): J {
  const entries = [...obj.entries];
  const n = r.pick([0, 0, 1, 1, 1, 2, 3]);
  for (let i = 0; i < n; i++) {
    const at = r.int(Math.max(entries.length, 1));
    const op = r.int(10);
    if (op < 5 && entries[at]) entries[at] = [entries[at][0], junkValue(r)];
    else if (op < 6 && entries.length) entries.splice(at, 1);
    else if (op < 7 && entries[at])
      entries.push([entries[at][0], junkValue(r)]); // a duplicate key
    else if (op < 9)
      entries.push([r.pick(PROTO_KEYS), r.chance(0.5) ? new Obj([['prototype', new Obj([['status', 'sent']])]]) : junkValue(r)]);
    else entries.push([junkString(r).slice(0, 30), junkValue(r)]);
  }
  if (r.chance(0.04)) return junkValue(r); // not an object at all
  return new Obj(entries);
}

// ---- what the fuzzer knows of the gateway ----------------------------------------------------

interface Known {
  chatMessageId: string;
  smsMessageId: string;
  failedSmsId: string;
  conversationId: string;
  emailId: string;
  conversationsCursor: string;
  emailsCursor: string;
  session: string;
}

type Route =
  | 'send_message'
  | 'send_email'
  | 'retry'
  | 'session_post'
  | 'session_delete'
  | 'conversations'
  | 'emails'
  | 'conversation_messages'
  | 'message'
  | 'email'
  | 'events'
  | 'twilio_status'
  | 'twilio_sms'
  | 'sendgrid'
  | 'other';

interface FuzzRequest extends RawRequest {
  /** the request is cut short on purpose (a Content-Length longer than what is sent): no answer is acceptable */
  incomplete?: boolean;
  /** the message ids (MessageSid and its aliases) an inbound SMS webhook carries, to account for the row it may store */
  inboundSids?: string[];
}

interface FuzzCase {
  index: number;
  route: Route;
  reqs: FuzzRequest[];
  /** a pipeline's answers, for the report */
  answers?: string[];
}

const ROUTES: Array<[Route, number]> = [
  ['send_message', 18],
  ['send_email', 12],
  ['retry', 3],
  ['session_post', 3],
  ['session_delete', 1],
  ['conversations', 8],
  ['emails', 5],
  ['conversation_messages', 6],
  ['message', 4],
  ['email', 4],
  ['events', 4],
  ['twilio_status', 10],
  ['twilio_sms', 10],
  ['sendgrid', 10],
  ['other', 2],
];
const ROUTE_WEIGHT = ROUTES.reduce((s, [, w]) => s + w, 0);

function pickRoute(r: Rng): Route {
  let x = r.int(ROUTE_WEIGHT);
  for (const [route, w] of ROUTES) {
    if (x < w) return route;
    x -= w;
  }
  return 'other';
}

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'PROPFIND', 'FOO', 'get', 'CONNECT'];

function junkId(r: Rng, known: Known): string {
  return r.pick([
    known.chatMessageId,
    known.smsMessageId,
    known.failedSmsId,
    known.conversationId,
    known.emailId,
    known.emailId.toUpperCase(),
    ...UUIDISH,
    'x'.repeat(64),
    'x'.repeat(65),
    '..',
    '%2e%2e',
    '%00',
    '%zz',
    '%',
    '-1',
    '1e9',
    'null',
    '__proto__',
    encodeURIComponent(wf(randomString(r, 10))),
  ]);
}

/** `wellFormed`: raw only when printable ASCII (other bytes in a target are the parser's 400). */
function encodeQueryValue(r: Rng, v: string, wellFormed: boolean): string {
  if (r.chance(0.1)) {
    const raw = v.replace(/[\s#]/g, '+'); // raw (unencoded) junk: the parser sees it as is
    if (!wellFormed || /^[\x21-\x7e]*$/.test(raw)) return raw;
  }
  return encodeURIComponent(wf(v));
}

function queryFor(r: Rng, route: Route, known: Known, wellFormed: boolean): string {
  const pairs: string[] = [];
  const wants: Record<string, () => string> = {
    limit: () =>
      r.pick(['1', '2', '50', '200', '0', '-1', '201', '1.5', 'abc', '1e2', '', '99999999999999999999', '0x10', ' 5', '%00', '５']),
    before: () =>
      r.pick([
        route === 'emails' ? known.emailsCursor : known.conversationsCursor,
        known.conversationsCursor,
        known.emailsCursor,
        '',
        'x',
        'x'.repeat(201),
        Buffer.from('["x","y"]').toString('base64url'),
        Buffer.from(`["not a date","${known.chatMessageId}"]`).toString('base64url'),
        Buffer.from(`["2020-01-01T00:00:00Z","${known.chatMessageId}",3]`).toString('base64url'),
        Buffer.from('[1e999,null]').toString('base64url'),
        '%zz',
        junkString(r).slice(0, 300),
      ]),
    conversation_id: () => r.pick([known.conversationId, known.conversationId.toUpperCase(), ...UUIDISH, junkString(r).slice(0, 100)]),
    lastEventId: () =>
      r.pick([
        '0',
        '1',
        '-1',
        '99999999999999999999',
        '18446744073709551616',
        '9223372036854775807',
        'abc',
        '',
        'x'.repeat(41),
        '1'.repeat(40),
        junkString(r).slice(0, 60),
      ]),
    lastEventID: () => r.pick(['0', '5', 'x']),
    mid: () => r.pick([known.smsMessageId, known.failedSmsId, known.chatMessageId, ...UUIDISH, junkString(r).slice(0, 100)]),
  };
  const keys =
    route === 'events' ? ['conversation_id', 'lastEventId', 'lastEventID'] : route === 'twilio_status' ? ['mid'] : ['limit', 'before'];
  for (const k of keys) if (r.chance(0.5)) pairs.push(`${k}=${encodeQueryValue(r, (wants[k] as () => string)(), wellFormed)}`);
  if (r.chance(0.15)) pairs.push(`${r.pick(keys)}=${encodeQueryValue(r, (wants[r.pick(keys)] as () => string)(), wellFormed)}`); // repeated key → array
  if (r.chance(0.15))
    pairs.push(
      r.pick([
        '__proto__=1',
        'constructor[prototype][x]=1',
        'a[b][c]=1',
        '&&&',
        '=',
        '=x',
        'x',
        '%zz=%zz',
        'token=secret',
        `${encodeQueryValue(r, junkString(r).slice(0, 20), wellFormed)}=1`,
      ]),
    );
  if (!pairs.length) return r.chance(0.05) ? '?' : '';
  return `?${pairs.join('&')}`;
}

function pathFor(r: Rng, route: Route, known: Known): string {
  switch (route) {
    case 'send_message':
      return '/api/send_message';
    case 'send_email':
      return '/api/send_email';
    case 'retry':
      return `/api/messages/${r.chance(0.7) ? known.failedSmsId : junkId(r, known)}/retry`;
    case 'session_post':
    case 'session_delete':
      return '/api/session';
    case 'conversations':
      return '/api/conversations';
    case 'emails':
      return '/api/emails';
    case 'conversation_messages':
      return `/api/conversation/${r.chance(0.6) ? known.conversationId : junkId(r, known)}/messages`;
    case 'message':
      return `/api/messages/${r.chance(0.5) ? r.pick([known.chatMessageId, known.smsMessageId]) : junkId(r, known)}`;
    case 'email':
      return `/api/emails/${r.chance(0.5) ? known.emailId : junkId(r, known)}`;
    case 'events':
      return '/api/events';
    case 'twilio_status':
      return '/webhooks/twilio/status';
    case 'twilio_sms':
      return '/webhooks/twilio/sms';
    case 'sendgrid':
      return '/webhooks/sendgrid/events';
    default:
      return r.pick([
        '/',
        '/api',
        '/api/',
        '/api/nope',
        '/webhooks',
        '/webhooks/twilio',
        '/healthz',
        '/readyz',
        '/metrics',
        '/index.html',
        '/assets/app.js',
        '/favicon.ico',
        '/documentation/json',
        `/${encodeURIComponent(wf(randomString(r, 8)))}`,
      ]);
  }
}

/**
 * 0-2 changes to a request target (most stay as they are, so most requests reach their route).
 * `wellFormed`: only targets Node's parser accepts (a pipeline must stay in step).
 */
function mutateTarget(r: Rng, target: string, wellFormed: boolean): string {
  if (!r.chance(0.2)) return target;
  let out = target;
  const enc = (s: string, i: number, upper: boolean) => {
    const hex = s.charCodeAt(i).toString(16).padStart(2, '0');
    return `${s.slice(0, i)}%${upper ? hex.toUpperCase() : hex}${s.slice(i + 1)}`;
  };
  for (let n = r.range(1, 2); n > 0; n--) {
    const q = out.indexOf('?');
    const path = q < 0 ? out : out.slice(0, q);
    const query = q < 0 ? '' : out.slice(q);
    const at = r.int(Math.max(path.length, 1));
    let p: string;
    let op = r.int(14);
    // a backslash, raw UTF-8, a target past 16 KiB or a percent-encoded character in an
    // absolute-form scheme (`%68ttp://`, `ht%74p://`): the parser's 400 / 431, which ends the
    // connection
    if (wellFormed && (op === 9 || op === 10 || op === 11 || (op === 0 && (at === 0 || at < path.indexOf('://'))))) op = 13;
    switch (op) {
      case 0:
        p = /[A-Za-z0-9_]/.test(path[at] ?? '') ? enc(path, at, r.chance(0.5)) : path;
        break;
      case 1:
        p = path.replace('/', '//');
        break;
      case 2:
        p = `${path}/`;
        break;
      case 3:
        p = path.replace(/\/([^/]*)$/, '/./$1');
        break;
      case 4:
        p = path.replace(/^\/([^/]*)/, '/$1/x/..');
        break;
      case 5:
        p = path.replace(/[a-z]/, (c) => c.toUpperCase());
        break;
      case 6:
        p = `${r.pick(['http://anything', 'http://127.0.0.1', 'https://evil.example:8443', 'HTTP://X', 'http://[::1]', 'http://a@b'])}${path}`;
        break;
      case 7:
        p = `${path};x=1`;
        break;
      case 8:
        p = `${path}${r.pick(['%00', '%zz', '%', '%c0%af', '%2F', '%252F', '%20', '%ff', '%e2%80%ae'])}`;
        break;
      case 9:
        p = `${path}/${'a'.repeat(r.pick([100, 1000, 9000, 20_000]))}`;
        break;
      case 10:
        p = path.replace('/', '\\');
        break;
      case 11:
        p = `${path}${r.pick(['é', '\u202e', '😀', '\u00a0'])}`; // raw UTF-8 in the target
        break;
      case 12:
        p = `${path}#frag`;
        break;
      default:
        p = path.replace(/\/[^/]*$/, `/${encodeURIComponent(wf(randomString(r, 6)))}`);
    }
    out = p + query;
  }
  return out;
}

const CONTENT_TYPES = [
  'application/json; charset=utf-8',
  'APPLICATION/JSON',
  'application/json;charset=UTF-8',
  'application/json; charset=latin1',
  'application/json; charset=utf-16',
  'application/json;;;',
  'application/json; boundary=x; x=y',
  'application/jsonx',
  'application/vnd.api+json',
  'application/json, text/plain',
  'text/plain',
  'text/json',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/*',
  '*/*',
  '',
  ' ',
  'application/json\u00e9',
  'x'.repeat(3000),
];

function authHeaders(r: Rng, known: Known): { headers: Record<string, string | null>; raw: Array<[string, string]> } {
  const headers: Record<string, string | null> = {};
  const raw: Array<[string, string]> = [];
  const k = r.int(100);
  if (k < 72) headers.authorization = `Bearer ${TEST_TOKEN}`;
  else if (k < 78)
    headers.cookie = r.pick([
      `hatch_session=${encodeURIComponent(known.session)}`,
      `a=1; hatch_session=${encodeURIComponent(known.session)}; b=%zz`,
    ]);
  else if (k < 84) {
    headers.authorization = r.pick([
      `bearer ${TEST_TOKEN}`,
      `Bearer  ${TEST_TOKEN}`,
      `Bearer ${TEST_TOKEN}x`,
      `Bearer ${TEST_TOKEN} extra`,
      'Bearer',
      'Bearer ',
      '',
      `Basic ${Buffer.from(`x:${TEST_TOKEN}`).toString('base64')}`,
      `Bearer ${'x'.repeat(r.pick([1024, 1025, 8000]))}`,
      'Bearer t\u00f6k\u00e9n',
      `Bearer ${TEST_TOKEN.slice(0, -1)}`,
      'Bearer %00',
      'Digest username="x"',
    ]);
  } else if (k < 90) {
    headers.cookie = r.pick([
      'hatch_session=%zz',
      'hatch_session=%',
      'hatch_session=',
      'hatch_session',
      '=;;;=;hatch_session==',
      `hatch_session=${'a'.repeat(6000)}`,
      `hatch_session=${known.session.slice(0, -2)}`,
      'hatch_session=v1.9999999999',
      '__proto__=x; constructor=y; hatch_session=%zz',
      `hatch_session=${encodeURIComponent(known.session)}; hatch_session=x`,
      `hatch_session="${known.session}"`,
      `hatch_session=${encodeURIComponent(wf(randomString(r, 20)))}`,
    ]);
  } else if (k < 93) {
    // both: a valid cookie does not rescue a wrong header
    headers.authorization = 'Bearer wrong';
    headers.cookie = `hatch_session=${encodeURIComponent(known.session)}`;
  } else if (k < 95) {
    raw.push(['authorization', `Bearer ${TEST_TOKEN}`], ['authorization', 'Bearer other']); // repeated
  }
  // else: no credential
  return { headers, raw };
}

/** Extra header lines: junk ids, odd protocol headers, bytes the parser must refuse (unless `wellFormed`). */
function extraHeaders(r: Rng, headers: Record<string, string | null>, raw: Array<[string, string]>, wellFormed: boolean): void {
  const n = r.pick([0, 0, 0, 1, 1, 2]);
  for (let i = 0; i < n; i++) {
    let op = r.int(14);
    if (wellFormed && (op === 4 || op === 5 || op === 7 || op === 8 || op === 9 || op === 12)) op = 13;
    switch (op) {
      case 0:
        headers['x-request-id'] = r.pick(['', 'x'.repeat(5000), '\u00e9\u00e9', '../../x', '1', '%00']);
        break;
      case 1:
        headers['last-event-id'] = r.pick(['0', '-1', 'x', '99999999999999999999', '18446744073709551616', ' 5', '']);
        break;
      case 2:
        headers['accept-encoding'] = r.pick(['gzip', 'br', 'deflate', '*', 'identity;q=0', 'x'.repeat(100)]);
        break;
      case 3:
        headers.accept = r.pick(['text/event-stream', 'application/json', '*/*', 'text/html', '', 'x/y;q=abc']);
        break;
      case 4:
        headers.expect = r.pick(['100-continue', 'x']);
        break;
      case 5:
        headers.host = r.pick(['', 'evil.example', 'a b', 'x'.repeat(1000), '[::1]:99999', null]);
        break;
      case 6:
        headers['x-forwarded-for'] = r.pick(['1.2.3.4', 'x', '1.2.3.4, 5.6.7.8', '::1', '999.999.999.999']);
        break;
      case 7:
        raw.push(['x-junk', r.pick(['a\u0001b', 'a\u007fb', 'a\u0000b'])]); // control bytes: the parser's 400
        break;
      case 8:
        raw.push([r.pick(['bad header', 'x\u00e9', '', ':x', 'x(y)']), 'v']);
        break;
      case 9:
        headers.upgrade = 'websocket';
        headers.connection = 'Upgrade';
        break;
      case 10:
        headers.origin = r.pick(['https://evil.example', 'null']);
        break;
      case 11:
        headers['x-http-method-override'] = r.pick(['DELETE', 'GET', 'PUT']);
        break;
      case 12:
        raw.push(['x-big', 'y'.repeat(r.pick([8000, 17_000]))]); // past Node's 16 KiB header limit: 431
        break;
      default:
        headers.range = r.pick(['bytes=0-1', 'bytes=-1', 'bytes=x']);
    }
  }
}

function idempotencyKey(r: Rng, wellFormed: boolean): string | undefined {
  const k = r.int(100);
  if (k < 70) return undefined;
  if (k < 82) return `fuzz-${r.int(40)}`; // a small pool: reused with other bodies (422), replays, in progress (409)
  return r.pick([
    '',
    ' ',
    'x'.repeat(255),
    'x'.repeat(256),
    'x'.repeat(10_000),
    'cl\u00e9',
    '\u00ff\u00fe',
    'a\tb',
    'a b',
    '__proto__',
    `k-${r.int(1e9)}`,
    // control characters but CR and LF (which would end the header): the parser's 400, unless wellFormed
    wf(randomString(r, 20).replace(wellFormed ? /[\0-\x08\x0a-\x1f\x7f]/g : /[\r\n]/g, '')),
  ]);
}

/** Content-Length lies, chunked bodies, a body cut short: applied to a request with a body. */
function frame(r: Rng, req: FuzzRequest): void {
  if (req.body === undefined) {
    if (r.chance(0.02)) req.contentLength = r.pick(['-1', 'abc', '0']);
    else if (r.chance(0.01)) {
      // a body announced and never sent
      req.contentLength = '10';
      req.halfClose = true;
      req.incomplete = true;
    }
    return;
  }
  const len = Buffer.byteLength(req.body);
  const k = r.int(100);
  if (k < 80) return;
  if (k < 84) {
    // claims more than is sent, then the client stops sending
    req.contentLength = String(len + r.range(1, 1000));
    req.halfClose = true;
    req.incomplete = true;
  } else if (k < 88) {
    req.contentLength = String(Math.max(0, len - r.range(1, Math.max(1, len))));
  } else if (k < 91) {
    req.contentLength = r.pick(['abc', '-1', '1e3', ' 12', '0x10', '', '99999999999999999999', '1,1']);
    // Node reads ` 12` as 12 (whitespace around a header value is not part of it): a body
    // announced longer than what is sent waits for the rest, so the client stops sending.
    if (/^[ \t]*[0-9]{1,15}[ \t]*$/.test(req.contentLength) && Number(req.contentLength) > len) {
      req.halfClose = true;
      req.incomplete = true;
    }
  } else if (k < 93) {
    req.rawHeaders = [...(req.rawHeaders ?? []), ['content-length', String(len + 1)]]; // two different lengths
  } else if (k < 95) {
    req.rawHeaders = [...(req.rawHeaders ?? []), ['transfer-encoding', 'chunked']]; // Content-Length and chunked: smuggling
  } else {
    const bytes = Buffer.from(req.body);
    const chunks: Buffer[] = [];
    for (let at = 0; at < bytes.length;) {
      const n = r.range(1, Math.max(1, Math.ceil(bytes.length / 3)));
      chunks.push(bytes.subarray(at, at + n));
      at += n;
    }
    req.chunks = chunks;
    delete req.body;
  }
}

function jsonBody(r: Rng, valid: Obj): string | Buffer {
  const text = emit(mutateObject(r, valid));
  const k = r.int(100);
  if (k < 93) return text;
  if (k < 95) return text.slice(0, r.int(text.length)); // truncated
  if (k < 97)
    return Buffer.concat([
      Buffer.from(text.slice(0, text.length >> 1)),
      Buffer.from([r.pick([0xff, 0xc0, 0x80, 0xed, 0x00])]),
      Buffer.from(text.slice(text.length >> 1)),
    ]); // invalid UTF-8
  if (k < 98) return `\ufeff${text}`;
  return r.pick([
    '',
    'null',
    '[]',
    '"x"',
    '1',
    '{',
    '}',
    '{}{}',
    '{"to":"Bob","body":"x"}garbage',
    'undefined',
    "{'to':'x'}",
    '{"__proto__":{"x":1}}',
    '{"constructor":{"prototype":{"x":1}}}',
  ]);
}

function sendMessageBody(r: Rng): Obj {
  const entries: Array<[string, J]> = [
    ['to', r.pick(['+15551234567', '+15557654321', 'Bob', 'Alice 2', '张伟', 'Room 101', r.pick(EDGE_STRINGS)])],
    ['body', r.pick(['hi', 'hello there', 'x'.repeat(1600), '😀', 'line\nbreak'])],
  ];
  if (r.chance(0.2)) entries.push(['from', r.pick([SMS_FROM, '+15551112222', 'me', 'Support'])]);
  return new Obj(entries);
}

function sendEmailBody(r: Rng): Obj {
  const entries: Array<[string, J]> = [
    ['to_email', r.chance(0.7) ? 'ann@example.com' : ['ann@example.com', 'bob@example.com']],
    ['subject', r.pick(['s', 'Hello', 'Ünïcode ✓'])],
    ['body', r.pick(['b', 'Hello,\nthere', '<b>x</b>'])],
  ];
  if (r.chance(0.3)) entries.push(['html_content', r.pick(['<p>x</p>', '<script>x</script>', 'x'])]);
  if (r.chance(0.2)) entries.push(['cc', 'cc@example.com']);
  if (r.chance(0.1)) entries.push(['bcc', ['bcc@example.com']]);
  if (r.chance(0.1)) entries.push(['reply_to', 'reply@example.com']);
  if (r.chance(0.3)) {
    entries.push([
      'attachments',
      [
        new Obj([
          ['filename', r.pick(['a.txt', 'report.pdf'])],
          ['content', r.pick(['QUJD', 'aGVsbG8='])],
          ['type', r.pick(['text/plain', 'application/pdf'])],
        ]),
      ],
    ]);
  }
  return new Obj(entries);
}

const SG_EVENTS = [
  'processed',
  'deferred',
  'delivered',
  'bounce',
  'blocked',
  'dropped',
  'open',
  'click',
  'spamreport',
  'unsubscribe',
  'group_unsubscribe',
  'x',
];

function sendgridBody(r: Rng, known: Known): string | Buffer {
  const events: J[] = Array.from({ length: r.pick([1, 1, 1, 2, 3, 10]) }, (_, i) => {
    const ev = new Obj([
      ['email', 'ann@example.com'],
      ['timestamp', Math.floor(Date.now() / 1000)],
      ['event', r.pick(SG_EVENTS)],
      ['sg_event_id', `fuzz-${r.int(1e9)}-${i}`],
      ['sg_message_id', r.pick(['unknownprefix.filter-1', 'msg-1.x', ''])],
      ['email_id', r.chance(0.7) ? known.emailId : r.pick(UUIDISH)],
    ]);
    if (r.chance(0.3)) ev.entries.push(['reason', r.pick(['550 no such user', 'x'])]);
    if (r.chance(0.2)) ev.entries.push(['status', r.pick(['5.1.1', '4.0.0'])]);
    if (r.chance(0.1)) ev.entries.push(['url', 'https://example.com']);
    if (r.chance(0.1)) ev.entries.push(['type', 'bounce']);
    return mutateObject(r, ev);
  });
  if (r.chance(0.02)) return `[${Array.from({ length: 10_001 }, () => '{}').join(',')}]`;
  const k = r.int(100);
  if (k < 92) return emit(events);
  if (k < 96) return emit(junkValue(r));
  return jsonBody(r, new Obj([]));
}

type FormPairs = Array<[string, string]>;

function formEncode(s: string): string {
  return encodeURIComponent(wf(s));
}

function twilioParams(r: Rng, route: 'twilio_status' | 'twilio_sms', sid: string): FormPairs {
  const pairs: FormPairs =
    route === 'twilio_status'
      ? [
          ['MessageSid', sid],
          ['SmsSid', sid],
          ['AccountSid', `AC${'1'.repeat(32)}`],
          ['From', SMS_FROM],
          ['To', '+15551234567'],
          [
            'MessageStatus',
            r.pick(['queued', 'sending', 'sent', 'delivered', 'undelivered', 'failed', 'accepted', 'read', 'received', 'x', '']),
          ],
        ]
      : [
          ['MessageSid', sid],
          ['AccountSid', `AC${'1'.repeat(32)}`],
          ['From', r.pick(['+15551234567', '+15557654321', '+447700900123'])],
          ['To', SMS_FROM],
          ['Body', r.pick(['hello', 'STOP', 'START', ' stop ', 'x'.repeat(1600), ''])],
          ['NumSegments', r.pick(['1', '2', '0', 'x', '1e9', '-1', '1e10', '99999999999', '1.5', ' 2'])],
        ];
  if (route === 'twilio_status' && r.chance(0.3))
    pairs.push(['ErrorCode', r.pick(['30003', '21610', 'x', ''])], ['ErrorMessage', 'Unreachable']);
  // 0-3 changes: a junk value, a removed or repeated parameter (a repeated one parses to an array), an extra one
  for (let n = r.pick([0, 0, 1, 1, 2, 3]); n > 0; n--) {
    const at = r.int(pairs.length);
    const op = r.int(10);
    const key = pairs[at]?.[0] ?? 'MessageSid';
    if (op < 5) pairs[at] = [key, junkString(r)];
    else if (op < 6) pairs.splice(at, 1);
    else if (op < 8) pairs.push([key, junkString(r).slice(0, 100)]);
    else pairs.push([r.chance(0.5) ? r.pick(PROTO_KEYS) : junkString(r).slice(0, 30), junkString(r).slice(0, 100)]);
  }
  return pairs;
}

/** The parameters as the gateway's form parser will see them (a repeated name: an array), for signing. */
function paramsOf(pairs: FormPairs): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  for (const [k0, v0] of pairs) {
    const k = wf(k0);
    const v = wf(v0);
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}

function generate(index: number, known: Known): FuzzCase {
  const r = caseRng(index);
  const route = pickRoute(r);
  const pipelined = r.chance(0.03);
  const n = pipelined ? r.range(2, 5) : 1;
  const reqs: FuzzRequest[] = [];
  for (let i = 0; i < n; i++) {
    let next = i === 0 ? route : pickRoute(r);
    // An event stream never ends: the answers to requests pipelined after it never come, so a
    // stream goes last.
    if (next === 'events' && i < n - 1) next = 'conversations';
    reqs.push(generateRequest(r, next, known, pipelined));
  }
  // Now and then a send twice, pipelined, with one Idempotency-Key: the second waits for the
  // first and replays its answer (or both are the same refusal).
  if (!pipelined && r.chance(0.02) && (route === 'send_message' || route === 'send_email')) {
    const again = generateRequest(r, route, known, true);
    again.headers = { ...again.headers, 'idempotency-key': `replay-${SEED}-${index}` };
    return { index, route, reqs: [again, { ...again }] };
  }
  return { index, route, reqs };
}

function generateRequest(r: Rng, route: Route, known: Known, pipelined: boolean): FuzzRequest {
  const isWebhook = route === 'twilio_status' || route === 'twilio_sms' || route === 'sendgrid';
  const query =
    route === 'send_message' || route === 'send_email' || route === 'retry' || route.startsWith('session')
      ? r.chance(0.05)
        ? queryFor(r, 'conversations', known, pipelined)
        : ''
      : queryFor(r, route, known, pipelined);
  const target = mutateTarget(r, `${pathFor(r, route, known)}${query}`, pipelined);
  const defaultMethod: Record<Route, string> = {
    send_message: 'POST',
    send_email: 'POST',
    retry: 'POST',
    session_post: 'POST',
    session_delete: 'DELETE',
    conversations: 'GET',
    emails: 'GET',
    conversation_messages: 'GET',
    message: 'GET',
    email: 'GET',
    events: 'GET',
    twilio_status: 'POST',
    twilio_sms: 'POST',
    sendgrid: 'POST',
    other: 'GET',
  };
  let method = r.chance(0.9) ? defaultMethod[route] : r.pick(METHODS);
  // In a pipeline every request is well-formed HTTP, so the answers stay in step: no method the
  // parser refuses (`get`, `FOO`), no CONNECT (Node closes a tunnel request unanswered when
  // nothing listens for 'connect').
  if (pipelined && (method === 'CONNECT' || method === 'get' || method === 'FOO')) method = 'GET';
  const { headers, raw } = isWebhook && r.chance(0.8) ? { headers: {}, raw: [] as Array<[string, string]> } : authHeaders(r, known);
  const req: FuzzRequest = { method, target, headers, rawHeaders: raw };
  const hasBody = method !== 'GET' && method !== 'HEAD' ? r.chance(0.97) : r.chance(0.05);

  if (route === 'twilio_status' || route === 'twilio_sms') {
    const sid = `SM${r.int(1e9).toString(16).padStart(32, '0')}`;
    const pairs = twilioParams(r, route, sid);
    const body = r.chance(0.95)
      ? pairs.map(([k, v]) => `${formEncode(k)}=${formEncode(v)}`).join('&')
      : r.pick(['%zz=%zz', '&&&', '=', 'a=%', `MessageSid=${sid}&MessageSid`, 'x'.repeat(70_000), '{"MessageSid":"x"}']);
    headers['content-type'] = r.chance(0.92) ? 'application/x-www-form-urlencoded' : r.pick(CONTENT_TYPES);
    const s = r.int(100);
    if (s < 75) headers['x-twilio-signature'] = twilio.getExpectedTwilioSignature(TWILIO_TOKEN, `${PUBLIC}${target}`, paramsOf(pairs));
    else if (s < 90)
      headers['x-twilio-signature'] = r.pick([
        '',
        'x',
        'AAAA',
        '%00',
        'x'.repeat(5000),
        twilio.getExpectedTwilioSignature('wrong', `${PUBLIC}${target}`, paramsOf(pairs)),
      ]);
    if (hasBody || method === 'POST') req.body = body;
    // as the gateway stores them: NUL dropped (webhooks/twilio.ts)
    if (route === 'twilio_sms')
      req.inboundSids = pairs
        .filter(([k]) => k === 'MessageSid' || k === 'SmsMessageSid' || k === 'SmsSid')
        .map(([, v]) => wf(v).replaceAll('\u0000', ''));
  } else if (route === 'sendgrid') {
    const body = sendgridBody(r, known);
    headers['content-type'] = r.chance(0.9) ? 'application/json' : r.pick(CONTENT_TYPES);
    const ts = String(Math.floor(Date.now() / 1000));
    const s = r.int(100);
    const signed = (key: typeof SG_KEY, at: string) =>
      sign('sha256', Buffer.concat([Buffer.from(at), Buffer.from(body)]), key).toString('base64');
    if (s < 75) {
      headers[SG_SIG] = signed(SG_KEY, ts);
      headers[SG_TS] = ts;
    } else if (s < 80) {
      headers[SG_SIG] = signed(SG_OTHER_KEY, ts);
      headers[SG_TS] = ts;
    } else if (s < 85) {
      const old = String(Number(ts) - 3600);
      headers[SG_SIG] = signed(SG_KEY, old);
      headers[SG_TS] = old;
    } else if (s < 92) {
      headers[SG_SIG] = r.pick(['', 'x', 'AAAA', 'MEUCIQ==', '%00', 'x'.repeat(5000)]);
      headers[SG_TS] = r.pick([ts, '', '-1', '1e3', '99999999999999999999', 'x']);
    }
    if (hasBody || method === 'POST') req.body = body;
  } else if (route === 'send_message' || route === 'send_email' || route === 'session_post' || route === 'retry') {
    const valid =
      route === 'send_message'
        ? sendMessageBody(r)
        : route === 'send_email'
          ? sendEmailBody(r)
          : route === 'session_post'
            ? new Obj([['token', r.chance(0.5) ? TEST_TOKEN : 'wrong']])
            : new Obj([]);
    headers['content-type'] = r.chance(0.85) ? 'application/json' : r.pick(CONTENT_TYPES);
    if (hasBody) req.body = route === 'retry' && r.chance(0.5) ? '' : jsonBody(r, valid);
    const key = idempotencyKey(r, pipelined);
    if (key !== undefined) headers['idempotency-key'] = key;
  } else if (hasBody) {
    headers['content-type'] = r.pick(['application/json', ...CONTENT_TYPES]);
    req.body = jsonBody(r, new Obj([['x', 1]]));
  }
  extraHeaders(r, headers, raw, pipelined);
  // A Content-Length that lies would desynchronise a pipeline: kept to single requests.
  if (!pipelined) frame(r, req);
  return req;
}

// ---- the oracle -------------------------------------------------------------------------------

/** What a stack trace or an internal path looks like in a body (unless the request itself sent it). */
const LEAKS: Array<[string, RegExp]> = [
  ['a stack frame', /\bat (?:async )?[\w.$<>[\] ]*\(?(?:file:|node:|\/)[^\s)]*:\d+:\d+/],
  ['node_modules', /node_modules/],
  ['a .ts source path', /\.ts\b/],
  ['an internal path', /\/work\/|node:internal/],
];

function bodyOf(req: FuzzRequest): Buffer | undefined {
  return req.chunks ? Buffer.concat(req.chunks.map((c) => Buffer.from(c))) : req.body === undefined ? undefined : Buffer.from(req.body);
}

/** A JS string literal with everything outside printable ASCII escaped: exact, and safe in TAP output. */
function show(s: string, max = Number(process.env.HATCH_FUZZ_SHOW ?? 300)): string {
  const cut = s.length > max ? `${s.slice(0, max)}...(${s.length} chars)` : s;
  return `"${cut.replace(/[^\x20-\x7e]|["\\]/g, (c) => (c === '"' || c === '\\' ? `\\${c}` : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`))}"`;
}

function describe(req: FuzzRequest): string {
  const body = bodyOf(req);
  return [
    `${show(req.method)} ${show(req.target)}`,
    `headers ${show(JSON.stringify(req.headers ?? {}), 600)}${req.rawHeaders?.length ? ` raw ${show(JSON.stringify(req.rawHeaders))}` : ''}`,
    req.contentLength !== undefined ? `content-length ${show(String(req.contentLength))}` : '',
    req.chunks ? `chunked (${req.chunks.length} chunks)` : '',
    req.halfClose ? 'half-closed after sending' : '',
    body === undefined ? 'no body' : `body (${body.length} bytes) ${show(body.toString('utf8'))}`,
  ]
    .filter(Boolean)
    .join('\n      ');
}

interface Tally {
  statuses: Map<string, number>;
  requests: number;
  /** failures by kind: how many, and the first few in full */
  failures: Map<string, { count: number; examples: string[] }>;
  failureCount: number;
  /** the slowest cases, to keep the run's time in view */
  slow: Array<{ ms: number; what: string }>;
  /** 202 answers to sends: a message row each (and a job for an SMS) */
  messageIds: Set<string>;
  smsAccepted: number;
  /** 202 answers with email_id: an email row and a job each */
  emailIds: Set<string>;
  /** 202 answers of the retry route: a job each */
  retries: number;
  /** ids of replayed answers (Idempotent-Replayed): must exist, add nothing */
  replayedIds: Set<string>;
  /** MessageSids of inbound SMS answered 200 */
  inboundSids: Set<string>;
}

function check(c: FuzzCase, req: FuzzRequest, res: RawResponse | undefined, tally: Tally): void {
  tally.requests++;
  const key = res ? String(res.status || 'no answer') : 'no answer';
  tally.statuses.set(key, (tally.statuses.get(key) ?? 0) + 1);
  const problems: string[] = [];
  const sent = `${req.target}\n${JSON.stringify(req.headers)}\n${JSON.stringify(req.rawHeaders)}\n${bodyOf(req)?.toString('utf8') ?? ''}`;
  if (!res || res.status === 0) {
    // Cut short on purpose, or CONNECT (Node closes a tunnel request unanswered when nothing
    // listens for 'connect'): no answer is not a 5xx. Anything else must be answered.
    if (!req.incomplete && req.method !== 'CONNECT') problems.push('no answer');
  } else {
    // Any 5xx fails, 503 included: with 16 requests in flight and no dependency down, every
    // documented overload bound (the send batcher's 5,000 queued sends, the SSE limits) is far
    // away, so a 503 + Retry-After here would be a bound that is wrong, not load shedding.
    if (res.status >= 500) problems.push(`a ${res.status}`);
    for (const [what, re] of LEAKS) if (re.test(res.body) && !re.test(sent)) problems.push(`${what} in the body`);
    const json = /json/i.test(res.headers['content-type'] ?? '');
    if (json && req.method !== 'HEAD' && !/text\/event-stream/i.test(res.headers['content-type'] ?? '')) {
      let body: unknown;
      try {
        body = JSON.parse(res.body);
      } catch {
        problems.push('a JSON content type with a body that is not JSON');
      }
      if (body !== undefined && (res.status < 200 || res.status >= 300)) {
        const b = body as { success?: unknown; error?: unknown; code?: unknown; details?: unknown };
        const shaped =
          b !== null &&
          typeof b === 'object' &&
          b.success === false &&
          typeof b.error === 'string' &&
          typeof b.code === 'string' &&
          /^[A-Z_]+$/.test(b.code) &&
          (b.details === undefined || Array.isArray(b.details));
        if (!shaped) problems.push('an error body not in the contract shape {success:false, error, code}');
      }
      if (body !== undefined && res.status >= 200 && res.status < 300) {
        const b = body as { message_id?: unknown; conversation_id?: unknown; email_id?: unknown; status?: unknown };
        const replayed = res.headers['idempotent-replayed'] === 'true';
        if (typeof b.message_id === 'string') {
          if (replayed) tally.replayedIds.add(b.message_id);
          else if (typeof b.conversation_id === 'string') {
            tally.messageIds.add(b.message_id);
            if (b.status === 'queued') tally.smsAccepted++;
          } else tally.retries++;
        }
        if (typeof b.email_id === 'string') {
          if (replayed) tally.replayedIds.add(b.email_id);
          else tally.emailIds.add(b.email_id);
        }
      }
    }
    if (res.status === 200 && /<Response\/>/.test(res.body)) for (const sid of req.inboundSids ?? []) tally.inboundSids.add(sid);
  }
  if (problems.length) fail(tally, c, problems, req, res);
}

function fail(tally: Tally, c: FuzzCase, problems: string[], req: FuzzRequest, res: RawResponse | undefined): void {
  tally.failureCount++;
  const kind = problems.join('; ');
  const entry = tally.failures.get(kind) ?? { count: 0, examples: [] };
  entry.count++;
  if (entry.examples.length < EXAMPLES) {
    entry.examples.push(
      `case #${c.index} (HATCH_FUZZ_SEED=${SEED} HATCH_FUZZ_CASES=${c.index}${c.reqs.length > 1 ? `, request ${c.reqs.indexOf(req) + 1} of ${c.reqs.length} pipelined: ${c.reqs.map((q) => `${q.method} ${show(q.target, 40)}`).join(', ')}; answers: ${c.answers?.join(', ') || 'none'}` : ''})\n      ${describe(req)}\n      -> ${res ? `${res.status} ${show(res.headers['content-type'] ?? '')} ${show(res.body)}` : 'no answer'}`,
    );
  }
  tally.failures.set(kind, entry);
}

async function runCase(port: number, c: FuzzCase, tally: Tally): Promise<void> {
  const t0 = Date.now();
  try {
    await exchangeCase(port, c, tally);
  } finally {
    const ms = Date.now() - t0;
    if (tally.slow.length < 5 || ms > (tally.slow[tally.slow.length - 1]?.ms ?? 0)) {
      const first = c.reqs[0] as FuzzRequest;
      tally.slow.push({ ms, what: `#${c.index} ${first.method} ${show(first.target, 60)}${first.incomplete ? ' (cut short)' : ''}` });
      tally.slow.sort((a, b) => b.ms - a.ms);
      tally.slow.length = Math.min(tally.slow.length, 5);
    }
  }
}

async function exchangeCase(port: number, c: FuzzCase, tally: Tally): Promise<void> {
  const timeoutMs = c.reqs.some((q) => q.incomplete) ? 1500 : 15_000;
  let answers: RawResponse[];
  try {
    answers =
      c.reqs.length === 1
        ? [await rawRequest(port, { ...(c.reqs[0] as FuzzRequest), timeoutMs })]
        : await rawPipeline(port, c.reqs, { timeoutMs });
  } catch (err) {
    // The connection was refused or reset before any answer: a dead or refusing server, unless
    // it is CONNECT (Node closes a tunnel request unanswered, maybe while its body is still
    // being sent: a reset).
    answers = [];
    if (c.reqs[0]?.method !== 'CONNECT') fail(tally, c, [`socket error ${(err as Error).message}`], c.reqs[0] as FuzzRequest, undefined);
  }
  if (c.reqs.length > 1) c.answers = answers.map((a) => `${a.status}${a.headers.connection === 'close' ? ' (close)' : ''}`);
  // In a pipeline, the server ends the connection after an answer that says so: the requests
  // after it are not run (pipelining.ts) and get no answer.
  const closedAt = answers.findIndex((a) => a.headers.connection === 'close');
  for (let i = 0; i < c.reqs.length; i++) {
    const res = answers[i];
    if (!res && closedAt >= 0 && i > closedAt) {
      tally.requests++;
      tally.statuses.set('not run after a closing answer', (tally.statuses.get('not run after a closing answer') ?? 0) + 1);
      continue;
    }
    check(c, c.reqs[i] as FuzzRequest, res, tally);
  }
}

function forceGc(): () => void {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  return () => {
    for (let i = 0; i < 3; i++) gc();
  };
}

const heapMiB = () => process.memoryUsage().heapUsed / MIB;

t.test(
  `${REQUESTS} fuzzed requests against a listening gateway: never a 5xx, no stack trace, errors in the contract shape, nothing stored by a refusal`,
  async (t) => {
    t.comment(`fuzz seed ${SEED} (reproduce: HATCH_FUZZ_SEED=${SEED}), ${REQUESTS} requests, ${CONCURRENCY} sockets`);
    const started = Date.now();
    const gw = await testGateway(t, {
      TWILIO_PHONE_NUMBER: SMS_FROM,
      TWILIO_AUTH_TOKEN: TWILIO_TOKEN,
      SENDGRID_WEBHOOK_PUBLIC_KEY: SG_PUBLIC_KEY,
      SENDGRID_FROM_EMAIL: 'hatch@example.com',
      PUBLIC_URL: PUBLIC,
      HATCH_RATE_LIMIT_PER_MINUTE: '100000000',
      ...(process.env.HATCH_FUZZ_LOG_LEVEL ? { LOG_LEVEL: process.env.HATCH_FUZZ_LOG_LEVEL } : {}),
    });
    const { app, db, bus, names, auth } = gw;
    await app.listen({ port: 0, host: '127.0.0.1' });
    const port = (app.server.address() as AddressInfo).port;

    // What the requests aim at: a chat message, an SMS, a failed SMS to retry, two emails, cursors, a session.
    const send = async (payload: object, url = '/api/send_message') => {
      const res = await app.inject({ method: 'POST', url, headers: auth, payload });
      t.equal(res.statusCode, 202, `seeded ${url}`);
      return res.json<{ message_id: string; conversation_id: string; email_id: string }>();
    };
    const chat = await send({ to: 'Seed Contact', body: 'seed' });
    const sms = await send({ to: '+15551234567', body: 'seed sms' });
    const failed = await send({ to: '+15557654321', body: 'seed failed sms' });
    await db.db.updateTable('messages').set({ status: 'failed', error_code: '30003' }).where('id', '=', failed.message_id).execute();
    const email = await send({ to_email: 'ann@example.com', subject: 's', body: 'b' }, '/api/send_email');
    await send({ to_email: 'bob@example.com', subject: 's2', body: 'b2' }, '/api/send_email');
    const page = async (url: string) => (await app.inject({ method: 'GET', url, headers: auth })).json<{ next_cursor: string | null }>();
    const login = await rawRequest(port, {
      method: 'POST',
      target: '/api/session',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: TEST_TOKEN }),
    });
    t.equal(login.status, 204, 'signed in for a session cookie');
    const known: Known = {
      chatMessageId: chat.message_id,
      smsMessageId: sms.message_id,
      failedSmsId: failed.message_id,
      conversationId: chat.conversation_id,
      emailId: email.email_id,
      conversationsCursor: (await page('/api/conversations?limit=1')).next_cursor ?? 'none',
      emailsCursor: (await page('/api/emails?limit=1')).next_cursor ?? 'none',
      session: decodeURIComponent(/hatch_session=([^;]+)/.exec(login.headers['set-cookie'] ?? '')?.[1] ?? ''),
    };
    t.not(known.conversationsCursor, 'none', 'a real conversations cursor');
    t.not(known.emailsCursor, 'none', 'a real emails cursor');

    const count = async () => ({
      messages: await db.db.selectFrom('messages').select('id').execute(),
      emails: await db.db.selectFrom('emails').select('id').execute(),
      jobs: (await bus.jsm.streams.info(names.streams.jobs)).state.messages,
    });
    // Seeded SMS and emails may still sit in the outbox: let the relay publish them first.
    await waitFor(
      async () => (await db.db.selectFrom('outbox').select('id').execute()).length === 0 || (await app.outbox.sweepOnce(), false),
      { timeoutMs: 20_000, message: 'seeded outbox rows published' },
    );
    const before = await count();
    const seededMessages = new Set(before.messages.map((m) => m.id));
    const seededEmails = new Set(before.emails.map((e) => e.id));

    const tally: Tally = {
      statuses: new Map(),
      requests: 0,
      failures: new Map(),
      failureCount: 0,
      slow: [],
      messageIds: new Set(),
      smsAccepted: 0,
      emailIds: new Set(),
      retries: 0,
      replayedIds: new Set(),
      inboundSids: new Set(),
    };
    const gc = forceGc();
    const warmup = Math.min(500, Math.floor(REQUESTS / 10));
    let nextIndex = 0;
    let generated = 0;

    // Cases are generated in index order, each from its own PRNG: the same seed gives the same
    // requests whatever the timing of the answers.
    const nextCase = (): FuzzCase | undefined => {
      for (;;) {
        if (ONLY ? nextIndex > Math.max(...ONLY) : generated >= REQUESTS) return undefined;
        const index = nextIndex++;
        if (ONLY && !ONLY.has(index)) continue;
        const c = generate(index, known);
        generated += c.reqs.length;
        return c;
      }
    };
    const worker = async (stopAt: () => boolean) => {
      while (!stopAt()) {
        const c = nextCase();
        if (!c) return;
        await runCase(port, c, tally);
      }
    };
    // Warm-up (routes compile their validators on first use, the JIT settles), then the heap baseline.
    await Promise.all(Array.from({ length: CONCURRENCY }, () => worker(() => generated >= warmup)));
    const warmedUpAfter = tally.requests;
    gc();
    const heapStart = heapMiB();
    await Promise.all(Array.from({ length: CONCURRENCY }, () => worker(() => false)));
    const fuzzMs = Date.now() - started;

    const dist = [...tally.statuses.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([s, n]) => `${s}: ${n}`)
      .join(', ');
    t.comment(`seed ${SEED}: ${tally.requests} requests in ${(fuzzMs / 1000).toFixed(1)} s; status codes: ${dist}`);
    t.comment(
      `accepted: ${tally.messageIds.size} messages (${tally.smsAccepted} SMS), ${tally.emailIds.size} emails, ${tally.retries} retries, ${tally.inboundSids.size} inbound SMS answered, ${tally.replayedIds.size} replayed ids`,
    );
    if (!ONLY) t.ok(tally.requests >= REQUESTS, `at least ${REQUESTS} requests sent (${tally.requests})`);
    for (const [kind, { count, examples }] of tally.failures) t.comment(`FAILED ${count}x: ${kind}\n    ${examples.join('\n    ')}`);
    t.comment(`slowest: ${tally.slow.map((s) => `${s.ms} ms ${s.what}`).join('; ')}`);
    t.equal(
      tally.failureCount,
      0,
      `no 5xx, no stack trace, errors in the contract shape, every request answered (seed ${SEED}; failures above)`,
    );

    // Alive: /healthz over a new socket, and a real send still goes through.
    const health = await rawRequest(port, { method: 'GET', target: '/healthz' });
    t.equal(health.status, 200, 'the process is alive: /healthz 200');
    const after = await rawRequest(port, {
      method: 'POST',
      target: '/api/send_message',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ to: 'After Fuzz', body: 'still works' }),
    });
    t.equal(after.status, 202, 'a good send right after is accepted');
    if (after.status === 202) tally.messageIds.add((JSON.parse(after.body) as { message_id: string }).message_id);

    // Memory back near its start. The gateway shares this process with the test, whose own
    // retained data is a few sets of ids. A leak per request shows: 9,500 requests × 4 KiB is
    // 37 MiB, and each of the ~1 % of requests that carry a 1 MiB string would add 1 MiB if its
    // body were kept. 32 MiB above the warmed-up baseline leaves room for V8's own caches (code,
    // inline caches, the pool's prepared statements) that grow with the variety of inputs.
    gc();
    const heapEnd = heapMiB();
    t.comment(
      `heapUsed after forced GC: ${heapStart.toFixed(1)} MiB after warm-up (${warmedUpAfter} requests), ${heapEnd.toFixed(1)} MiB at the end`,
    );
    t.ok(heapEnd < heapStart + 32, `heap back near its start (${heapStart.toFixed(1)} → ${heapEnd.toFixed(1)} MiB, bound +32 MiB)`);

    // Nothing stored by a refused request; everything answered 2xx stored. Jobs: once the outbox
    // is empty, every job published since the baseline is owed to an accepted SMS, email or retry.
    await waitFor(
      async () => (await db.db.selectFrom('outbox').select('id').execute()).length === 0 || (await app.outbox.sweepOnce(), false),
      { timeoutMs: 30_000, message: 'outbox drained' },
    );
    const end = await count();
    const inbound = await db.db.selectFrom('messages').select(['id', 'provider_sid']).where('direction', '=', 'inbound').execute();
    const inboundIds = new Set(inbound.map((m) => m.id));
    const unowed = end.messages
      .filter((m) => !seededMessages.has(m.id) && !inboundIds.has(m.id) && !tally.messageIds.has(m.id))
      .map((m) => m.id);
    t.same(unowed, [], 'every new outbound message row answers a 202 counted here');
    // What they are, to find the request (their time against the cases around it)
    for (const id of unowed.slice(0, 10)) {
      const m = await db.db.selectFrom('messages').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
      t.comment(
        `stored without a 202: ${show(JSON.stringify({ to: m.to_contact, from: m.from_contact, body: m.body.slice(0, 80), at: m.created_at }))}`,
      );
    }
    t.same(
      inbound.filter((m) => !m.provider_sid || !tally.inboundSids.has(m.provider_sid)).map((m) => m.provider_sid),
      [],
      'every inbound SMS row answers a signed inbound webhook answered 200',
    );
    const stored = new Set(end.messages.map((m) => m.id));
    t.same(
      [...tally.messageIds].filter((id) => !stored.has(id)),
      [],
      'every 202 send is stored',
    );
    const storedEmails = new Set(end.emails.map((e) => e.id));
    t.same(
      end.emails.filter((e) => !seededEmails.has(e.id) && !tally.emailIds.has(e.id)).map((e) => e.id),
      [],
      'every new email row answers a 202 counted here',
    );
    t.same(
      [...tally.emailIds].filter((id) => !storedEmails.has(id)),
      [],
      'every 202 email is stored',
    );
    t.same(
      [...tally.replayedIds].filter((id) => !stored.has(id) && !storedEmails.has(id)),
      [],
      'every replayed answer names a stored row',
    );
    t.equal(
      end.jobs - before.jobs,
      tally.smsAccepted + tally.emailIds.size + tally.retries,
      'jobs published = SMS accepted + emails accepted + retries accepted',
    );
    t.comment(`fuzz test ran ${((Date.now() - started) / 1000).toFixed(1)} s`);
  },
);

// ---- the fuzzer's findings, kept as a fixed table ---------------------------------------------

t.test('what the fuzzer found stays fixed: 4xx in the contract shape, in order, nothing stored by a refusal', async (t) => {
  const { app, db, auth } = await testGateway(t, {
    TWILIO_PHONE_NUMBER: SMS_FROM,
    TWILIO_AUTH_TOKEN: TWILIO_TOKEN,
    SENDGRID_WEBHOOK_PUBLIC_KEY: SG_PUBLIC_KEY,
    PUBLIC_URL: PUBLIC,
    HATCH_RATE_LIMIT_PER_MINUTE: '100000',
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as AddressInfo).port;
  const json = { ...auth, 'content-type': 'application/json' };
  const messages = async () => (await db.db.selectFrom('messages').select('id').execute()).length;
  const shaped = (res: RawResponse, status: number, code: string, label: string) => {
    t.equal(res.status, status, `${label}: ${status}`);
    t.match(JSON.parse(res.body || 'null'), { success: false, code, error: String }, `${label}: the contract's error body`);
  };

  // Answered by Node's parser or by Fastify before any route, in Fastify's own shape before.
  shaped(
    await rawRequest(port, { method: 'GET', target: '/api/conversations', headers: auth, rawHeaders: [['bad header', 'v']] }),
    400,
    'INVALID_REQUEST',
    'a malformed header line',
  );
  shaped(
    await rawRequest(port, { method: 'GET', target: '/api/conversations', headers: auth, rawHeaders: [['x-big', 'y'.repeat(17_000)]] }),
    431,
    'HEADERS_TOO_LARGE',
    'headers past 16 KiB',
  );
  shaped(
    await rawRequest(port, { method: 'GET', target: '/api/%zz', headers: auth }),
    400,
    'INVALID_REQUEST',
    'malformed percent-encoding in the target',
  );
  shaped(
    await rawRequest(port, { method: 'GET', target: '/api/events', headers: { ...auth, accept: 'text/html' } }),
    406,
    'NOT_ACCEPTABLE',
    'an event stream refused by Accept',
  );

  // A HEAD on the event stream hung: no head, a hub client held.
  const head = await rawRequest(port, { method: 'HEAD', target: '/api/events', headers: auth, timeoutMs: 5000 });
  t.ok(head.status >= 400 && head.status < 500, `HEAD /api/events is answered at once (${head.status})`);

  // Strings PostgreSQL cannot store were 500s.
  const before = await messages();
  for (const [label, body] of [
    ['a lone surrogate in to', '{"to":"\\udfff","body":"x"}'],
    ['a lone surrogate in body', '{"to":"Bob","body":"a\\ud800"}'],
    ['a lone low surrogate in a key', '{"to":"Bob","body":"x","\\udc00":1}'],
  ] as const) {
    shaped(await rawRequest(port, { method: 'POST', target: '/api/send_message', headers: json, body }), 400, 'INVALID_REQUEST', label);
  }
  shaped(
    await rawRequest(port, {
      method: 'POST',
      target: '/api/send_email',
      headers: json,
      body: '{"to_email":"a@example.com","subject":"s","body":"b","attachments":[{"filename":"\\ud800.txt","content":"QUJD","type":"text/plain"}]}',
    }),
    400,
    'INVALID_REQUEST',
    'a lone surrogate in an attachment name (a jsonb column)',
  );
  shaped(
    await rawRequest(port, {
      method: 'POST',
      target: '/api/send_email',
      headers: json,
      body: '{"to_email":"a@example.com","subject":"s","body":"b","html_content":"<p>a\\u0000b</p>"}',
    }),
    400,
    'INVALID_REQUEST',
    'a NUL in html_content',
  );
  // Hashing an Idempotency-Key's request recursed: a body 10,000 levels deep (the retry route
  // checks no body) overflowed the stack.
  const deep = `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`;
  shaped(
    await rawRequest(port, {
      method: 'POST',
      target: '/api/messages/0a0a0a0a-0a0a-4a0a-8a0a-0a0a0a0a0a0a/retry',
      headers: { ...json, 'idempotency-key': 'deep-1' },
      body: deep,
    }),
    400,
    'INVALID_REQUEST',
    'a deeply nested body with an Idempotency-Key',
  );
  const ok = await rawRequest(port, {
    method: 'POST',
    target: '/api/send_message',
    headers: json,
    body: '{"to":"Bob","body":"\\ud83d\\ude00 a pair is fine"}',
  });
  t.equal(ok.status, 202, 'a surrogate pair (an emoji) is fine');
  t.equal(await messages(), before + 1, 'nothing stored by the refusals');

  // Twilio: a repeated parameter (an array), a NUL, a segment count out of range, a mid we do not have.
  const twilioPost = (path: string, form: string, params: Record<string, string | string[]>) =>
    rawRequest(port, {
      method: 'POST',
      target: path,
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'x-twilio-signature': twilio.getExpectedTwilioSignature(TWILIO_TOKEN, `${PUBLIC}${path}`, params),
      },
      body: form,
    });
  const inbound = { MessageSid: 'SMfuzz0001', From: '+15551234567', To: SMS_FROM, Body: 'hi' };
  shaped(
    await twilioPost('/webhooks/twilio/sms', 'MessageSid=SMfuzz0001&From=%2B15551234567&To=%2B15005550006&Body=hi&To=x', {
      ...inbound,
      To: [SMS_FROM, 'x'],
    }),
    400,
    'INVALID_REQUEST',
    'an inbound SMS with To twice',
  );
  const nul = await twilioPost(
    '/webhooks/twilio/sms',
    'MessageSid=SMfuzz0002&From=%2B15551234567&To=%2B15005550006&Body=a%00b&NumSegments=-1',
    { ...inbound, MessageSid: 'SMfuzz0002', Body: 'a\u0000b', NumSegments: '-1' },
  );
  t.equal(nul.status, 200, 'an inbound SMS with a NUL and a negative NumSegments is stored');
  const big = await twilioPost(
    '/webhooks/twilio/sms',
    'MessageSid=SMfuzz0003&From=%2B15551234567&To=%2B15005550006&Body=x&NumSegments=99999999999',
    { ...inbound, MessageSid: 'SMfuzz0003', Body: 'x', NumSegments: '99999999999' },
  );
  t.equal(big.status, 200, 'an inbound SMS with NumSegments past an integer is stored');
  const stored = await db.db
    .selectFrom('messages')
    .select(['provider_sid', 'body', 'segments'])
    .where('provider_sid', 'in', ['SMfuzz0002', 'SMfuzz0003'])
    .orderBy('provider_sid')
    .execute();
  t.same(
    stored,
    [
      { provider_sid: 'SMfuzz0002', body: 'ab', segments: null },
      { provider_sid: 'SMfuzz0003', body: 'x', segments: null },
    ],
    'NUL dropped, segment counts out of range left out',
  );
  const unknown = '0a0a0a0a-0a0a-4a0a-8a0a-0a0a0a0a0a0a';
  const statusParams = { MessageSid: 'SMfuzz0004', MessageStatus: 'accepted' };
  const status = await twilioPost(`/webhooks/twilio/status?mid=${unknown}`, 'MessageSid=SMfuzz0004&MessageStatus=accepted', statusParams);
  t.equal(status.status, 204, 'a status callback naming a message we do not have is 204 (a foreign-key 500 before)');
  shaped(
    await twilioPost('/webhooks/twilio/status', 'MessageSid=a&MessageSid=b&MessageStatus=sent', {
      MessageSid: ['a', 'b'],
      MessageStatus: 'sent',
    }),
    400,
    'INVALID_REQUEST',
    'a status callback with MessageSid twice',
  );

  // SendGrid: NUL in event fields; an event named after an Object.prototype member found that
  // member as its status (a function handed to the query builder: a 500).
  const emailId = (
    await app.inject({
      method: 'POST',
      url: '/api/send_email',
      headers: auth,
      payload: { to_email: 'a@example.com', subject: 's', body: 'b' },
    })
  ).json().email_id as string;
  const events = JSON.stringify([
    { email: 'a@example.com', event: 'deferred', sg_event_id: 'x\u0000y', reason: 'r\u0000', email_id: unknown, timestamp: 1 },
    ...['constructor', 'toString', '__proto__', 'hasOwnProperty'].map((event, i) => ({
      email: 'a@example.com',
      event,
      sg_event_id: `proto-${i}`,
      email_id: emailId,
      timestamp: 1,
    })),
  ]);
  const ts = String(Math.floor(Date.now() / 1000));
  const sg = await rawRequest(port, {
    method: 'POST',
    target: '/webhooks/sendgrid/events',
    headers: {
      'content-type': 'application/json',
      [SG_SIG]: sign('sha256', Buffer.from(ts + events), SG_KEY).toString('base64'),
      [SG_TS]: ts,
    },
    body: events,
  });
  t.equal(sg.status, 204, 'a signed SendGrid batch with NUL in its fields and prototype names as events is 204');

  // Pipelining: a request behind an answer that closes the connection is not run (it was, and
  // its row was stored with no answer); an answer is never replaced by a later request's 400.
  const beforePipe = await messages();
  const send = { method: 'POST', target: '/api/send_message', headers: json, body: '{"to":"Pipelined","body":"must not be stored"}' };
  const afterBadJson = await rawPipeline(port, [{ method: 'POST', target: '/api/send_message', headers: json, body: '{"to":' }, send]);
  t.same(
    afterBadJson.map((a) => [a.status, a.headers.connection]),
    [[400, 'close']],
    'invalid JSON: 400 and close; the send behind it gets no answer',
  );
  const afterTooLarge = await rawPipeline(port, [
    { method: 'POST', target: '/api/send_message', headers: json, body: JSON.stringify({ to: 'x', body: 'y'.repeat(70_000) }) },
    send,
  ]);
  t.same(
    afterTooLarge.map((a) => [a.status, a.headers.connection]),
    [[413, 'close']],
    'a body past the limit: 413 and close; the send behind it gets no answer',
  );
  t.equal(await messages(), beforePipe, 'and neither send behind a closing answer was run');
  const inOrder = await rawPipeline(port, [
    { method: 'GET', target: '/api/conversations', headers: auth },
    { method: 'POST', target: '/api/send_message', headers: json, body: '{"to":"Pipelined","body":"stored"}' },
    { method: 'GET', target: '/api/conversations', headers: auth, rawHeaders: [['bad header', 'v']] },
  ]);
  t.same(
    inOrder.map((a) => a.status),
    [200, 202],
    'answers in order; the malformed third request ends the connection after them, with no misplaced 400',
  );
  const longBody = await rawRequest(port, {
    method: 'POST',
    target: '/api/send_message',
    headers: json,
    body: '{"to":"Bob","body":"x"}GARBAGE GARBAGE\r\n\r\n',
    contentLength: '23',
  });
  t.equal(
    longBody.status,
    202,
    'a body longer than its Content-Length: the request it announces is answered, the excess closes the connection',
  );

  // A body cut short is answered at once (it waited for the request timeout).
  const started = Date.now();
  const cut = await rawRequest(port, {
    method: 'POST',
    target: '/api/send_message',
    headers: json,
    body: '{"to":"Bob"',
    contentLength: '100',
    halfClose: true,
    timeoutMs: 5000,
  });
  t.ok(cut.status === 400 || cut.status === 0, `a body cut short: ${cut.status || 'closed'}`);
  t.ok(Date.now() - started < 2000, 'without waiting for the request timeout');
});
