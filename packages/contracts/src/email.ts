/**
 * The rules of `POST /api/send_email` that a JSON schema cannot say (issue 7): RFC 5322 addr-spec
 * with sane limits, recipients counted and de-duplicated across to/cc/bcc, header-bound fields
 * without CR/LF (header injection, docs/api.md#send-an-email), attachment sizes measured decoded.
 * Pure functions (no Node APIs): the web UI's composer checks with the same ones.
 */
import Type from 'typebox';
import type { ErrorDetail, SendEmailBody } from './http.js';
import { EMAIL_LIMITS } from './http.js';

// dot-atom local part (RFC 5322 §3.4.1 atext); quoted local parts are refused on purpose: they
// are legal but almost only ever seen in abuse, and several MTAs mishandle them.
const LOCAL = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;
// A DNS host name with at least two labels; the last is letters only (a TLD), or punycode.
const LABEL = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const TLD = /^([A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})$/;

/** Why `value` is not an acceptable address, or null when it is. */
export function emailAddressProblem(value: string): string | null {
  if (value.length > EMAIL_LIMITS.addressMax) return `must be at most ${EMAIL_LIMITS.addressMax} characters`;
  if (/[\u0000-\u0020\u007f]/.test(value)) return 'must not contain spaces, line breaks or control characters';
  const at = value.lastIndexOf('@');
  if (at < 1 || at === value.length - 1) return 'must be an address like name@example.com';
  const local = value.slice(0, at);
  const domain = value.slice(at + 1);
  if (local.length > EMAIL_LIMITS.localPartMax) return `local part (before @) must be at most ${EMAIL_LIMITS.localPartMax} characters`;
  if (!LOCAL.test(local)) return 'local part (before @) has characters or dots an address may not have';
  const labels = domain.split('.');
  if (labels.length < 2 || !labels.every((l) => LABEL.test(l)) || !TLD.test(labels[labels.length - 1] ?? ''))
    return 'domain (after @) is not a valid host name';
  return null;
}

export function isEmailAddress(value: string): boolean {
  return emailAddressProblem(value) === null;
}

/** A string that isEmailAddress accepts, as a schema for settings (SENDGRID_FROM_EMAIL) and the provider emulator. */
export const EmailAddressSchema = Type.Refine(Type.String({ description: 'an email address like name@example.com' }), isEmailAddress);

/** One address or an array of them, as the contract allows for to_email / cc / bcc. */
export function asList(v: string | string[] | undefined): string[] {
  if (v === undefined) return [];
  return Array.isArray(v) ? v : [v];
}

// Header-bound text: CR, LF, NUL and other C0 controls (tab included), DEL, U+2028/2029.
const HEADER_FORBIDDEN = /[\u0000-\u001f\u007f\u2028\u2029]/;
// Body text: line breaks and tabs are text; other controls are not.
const BODY_FORBIDDEN = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
// RFC 6838 type/subtype names (no parameters).
const MIME = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;

/** Byte length of a base64 string's decoded content (valid base64 assumed). */
export function base64DecodedSize(b64: string): number {
  const pad = b64.endsWith('==') ? 2 : b64.endsWith('=') ? 1 : 0;
  return (b64.length / 4) * 3 - pad;
}

function utf8Bytes(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

export interface CheckedEmail {
  to: string[];
  cc: string[];
  bcc: string[];
  /** decoded size of each attachment, in order */
  attachmentSizes: number[];
}

/**
 * Every rule of the send_email body beyond its schema; `details` name each failing field
 * (`body.cc.1`, `body.attachments.0.content`) in the contract's error format.
 */
export function checkSendEmail(b: SendEmailBody): { ok: true; value: CheckedEmail } | { ok: false; details: ErrorDetail[] } {
  const details: ErrorDetail[] = [];
  const bad = (field: string, message: string) => details.push({ field: `body.${field}`, message });
  const lists = { to_email: asList(b.to_email), cc: asList(b.cc), bcc: asList(b.bcc) };
  const seen = new Map<string, string>();
  let count = 0;
  for (const [name, list] of Object.entries(lists)) {
    const single = !Array.isArray(b[name as keyof typeof lists]);
    list.forEach((addr, i) => {
      const field = single ? name : `${name}.${i}`;
      count++;
      const p = emailAddressProblem(addr);
      if (p) return bad(field, p);
      const key = addr.toLowerCase();
      const first = seen.get(key);
      if (first) bad(field, `duplicates ${first}: each address may appear once across to_email, cc and bcc`);
      else seen.set(key, `body.${field}`);
    });
  }
  if (count > EMAIL_LIMITS.recipientsMax)
    bad('to_email', `too many recipients: at most ${EMAIL_LIMITS.recipientsMax} across to_email, cc and bcc (got ${count})`);
  if (b.reply_to !== undefined) {
    const p = emailAddressProblem(b.reply_to);
    if (p) bad('reply_to', p);
  }
  if (HEADER_FORBIDDEN.test(b.subject)) bad('subject', 'must not contain CR, LF or other control characters');
  if (b.subject.trim().length === 0) bad('subject', 'must not be blank');
  if (BODY_FORBIDDEN.test(b.body)) bad('body', 'must not contain control characters other than line breaks and tabs');
  if (utf8Bytes(b.body) > EMAIL_LIMITS.bodyMaxBytes) bad('body', `must be at most ${EMAIL_LIMITS.bodyMaxBytes} bytes`);
  if (b.html_content !== undefined && utf8Bytes(b.html_content) > EMAIL_LIMITS.bodyMaxBytes)
    bad('html_content', `must be at most ${EMAIL_LIMITS.bodyMaxBytes} bytes`);
  // The body's rule (HTML allows no other control characters either); a NUL reached PostgreSQL,
  // whose text cannot hold it: a 500, found by the gateway's fuzz test.
  if (b.html_content !== undefined && BODY_FORBIDDEN.test(b.html_content))
    bad('html_content', 'must not contain control characters other than line breaks and tabs');
  const sizes: number[] = [];
  let total = 0;
  (b.attachments ?? []).forEach((a, i) => {
    const f = `attachments.${i}`;
    if (/[/\\]/.test(a.filename) || HEADER_FORBIDDEN.test(a.filename) || a.filename === '.' || a.filename === '..') {
      bad(`${f}.filename`, 'must be a plain file name: no path separators, line breaks or control characters');
    }
    if (!MIME.test(a.type)) bad(`${f}.type`, 'must be a MIME type like application/pdf (no parameters)');
    if (a.content.length % 4 !== 0 || !BASE64.test(a.content)) {
      bad(`${f}.content`, 'must be standard base64 (A-Z a-z 0-9 + /, padded with =, no line breaks)');
      sizes.push(0);
      return;
    }
    const size = base64DecodedSize(a.content);
    if (size === 0) bad(`${f}.content`, 'must not be empty');
    if (size > EMAIL_LIMITS.attachmentMaxBytes)
      bad(`${f}.content`, `is ${size} bytes decoded; at most ${EMAIL_LIMITS.attachmentMaxBytes} per attachment`);
    sizes.push(size);
    total += size;
  });
  if (total > EMAIL_LIMITS.attachmentsTotalMaxBytes)
    bad('attachments', `total ${total} bytes decoded; at most ${EMAIL_LIMITS.attachmentsTotalMaxBytes} in all`);
  if (details.length) return { ok: false, details };
  return { ok: true, value: { to: lists.to_email, cc: lists.cc, bcc: lists.bcc, attachmentSizes: sizes } };
}

/**
 * Body size limit of `POST /api/send_email`: the attachments' 20 MB decoded grow by 4/3 in
 * base64, plus the text fields and JSON overhead. Every other route keeps the 64 KiB limit.
 */
export const SEND_EMAIL_BODY_LIMIT_BYTES = 28 * 1024 * 1024;

/** SendGrid's `custom_args` key that carries our email id into every event (no PII: an id only). */
export const SENDGRID_EMAIL_ID_ARG = 'email_id';
