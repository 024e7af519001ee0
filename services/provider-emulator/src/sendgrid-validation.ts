/**
 * SendGrid's v3 mail send validation: every problem reported at once, with SendGrid's messages
 * and help anchors. Addresses by the contract's one rule (@hatch/contracts isEmailAddress):
 * stricter than SendGrid, and nothing Hatch sends is refused by it (the gateway checks the same).
 * CR or LF in a header-bound field is refused on purpose (sendgrid.ts, file comment).
 */
import { isEmailAddress } from '@hatch/contracts';
import type { SendGridError } from './sendgrid-errors.js';

/** SendGrid's documented limits (docs/reliability.md#sendgrid). */
export const MAX_RECIPIENTS = 1000;
export const MAX_PERSONALIZATIONS = 1000;
const MAX_CUSTOM_ARGS_BYTES = 10_000;
const HELP = 'http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html';

type Json = Record<string, unknown>;

export interface Recipient {
  email: string;
  personalization: number;
  customArgs: Record<string, string>;
}

export interface ValidMail {
  recipients: Recipient[];
  categories: string[];
  sandbox: boolean;
}

const CRLF = /[\r\n]/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

class Problems {
  readonly list: SendGridError[] = [];
  add(field: string | null, message: string, anchor?: string): void {
    this.list.push({ message, field, help: anchor ? `${HELP}#${anchor}` : null });
  }
}

function checkAddress(v: unknown, field: string, p: Problems, anchor: string): string | undefined {
  if (!isObject(v) || typeof v.email !== 'string') {
    p.add(`${field}.email`, 'The email parameter is required and must be a valid email address.', anchor);
    return undefined;
  }
  if (!isEmailAddress(v.email)) p.add(`${field}.email`, 'Does not contain a valid address.', anchor);
  if (v.name !== undefined && (typeof v.name !== 'string' || CRLF.test(v.name))) {
    p.add(`${field}.name`, 'The name must be a string without CR or LF characters.', anchor);
  }
  return v.email;
}

function checkStringMap(v: unknown, field: string, p: Problems, what: string): Record<string, string> {
  if (v === undefined) return {};
  if (!isObject(v)) {
    p.add(field, `The ${what} must be an object of string values.`);
    return {};
  }
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== 'string') p.add(`${field}.${k}`, `The ${what} values must be strings.`);
    else if (CRLF.test(k) || (what === 'headers' && CRLF.test(val)))
      p.add(`${field}.${k}`, `The ${what} may not contain CR or LF characters.`);
    else out[k] = val;
  }
  return out;
}

function checkSubject(v: unknown, field: string, p: Problems): boolean {
  if (v === undefined) return false;
  if (typeof v !== 'string' || v.length === 0) {
    p.add(field, 'The subject must be a string at least one character in length.', 'message.subject');
    return false;
  }
  if (CRLF.test(v)) p.add(field, 'The subject may not contain CR or LF characters.', 'message.subject');
  return true;
}

/** Validates a v3 mail send body; every problem is reported, as SendGrid does. */
export function validateMailSend(body: unknown): { mail: ValidMail } | { errors: SendGridError[] } {
  const p = new Problems();
  if (!isObject(body)) return { errors: [{ message: 'Bad Request', field: null, help: null }] };

  const templateId = typeof body.template_id === 'string' && body.template_id.length > 0;
  const messageArgs = checkStringMap(body.custom_args, 'custom_args', p, 'custom_args');
  checkStringMap(body.headers, 'headers', p, 'headers');

  const recipients: Recipient[] = [];
  let everyPersonalizationHasSubject = true;
  const personalizations = body.personalizations;
  if (!Array.isArray(personalizations) || personalizations.length === 0) {
    p.add(
      'personalizations',
      'The personalizations field is required and must have at least one personalization.',
      '-Personalizations-Errors',
    );
    everyPersonalizationHasSubject = false;
  } else if (personalizations.length > MAX_PERSONALIZATIONS) {
    p.add(
      'personalizations',
      `The personalizations field may not have more than ${MAX_PERSONALIZATIONS} personalizations.`,
      '-Personalizations-Errors',
    );
  } else {
    personalizations.forEach((pers: unknown, i) => {
      const f = `personalizations.${i}`;
      if (!isObject(pers)) {
        p.add(f, 'Each personalization must be an object.', '-Personalizations-Errors');
        everyPersonalizationHasSubject = false;
        return;
      }
      if (!checkSubject(pers.subject, `${f}.subject`, p)) everyPersonalizationHasSubject = false;
      const args = { ...messageArgs, ...checkStringMap(pers.custom_args, `${f}.custom_args`, p, 'custom_args') };
      if (Buffer.byteLength(JSON.stringify(args)) > MAX_CUSTOM_ARGS_BYTES) {
        p.add(`${f}.custom_args`, `The custom_args of a personalization may not exceed ${MAX_CUSTOM_ARGS_BYTES} bytes.`);
      }
      checkStringMap(pers.headers, `${f}.headers`, p, 'headers');
      if (pers.send_at !== undefined && !Number.isInteger(pers.send_at))
        p.add(`${f}.send_at`, 'The send_at parameter must be a unix timestamp (integer).');
      const seen = new Map<string, string>();
      for (const kind of ['to', 'cc', 'bcc'] as const) {
        const list = pers[kind];
        if (list === undefined && kind !== 'to') continue;
        if (!Array.isArray(list) || list.length === 0) {
          p.add(
            `${f}.${kind}`,
            kind === 'to'
              ? 'The to array is required for all personalization objects, and must have at least one email object with a valid email address.'
              : `The ${kind} array must have at least one email object with a valid email address.`,
            `message.personalizations.${kind}`,
          );
          continue;
        }
        list.forEach((addr: unknown, j) => {
          const email = checkAddress(addr, `${f}.${kind}.${j}`, p, `message.personalizations.${kind}`);
          if (email === undefined) return;
          const key = email.toLowerCase();
          if (seen.has(key)) {
            p.add(
              f,
              `Each email address in the personalization block should be unique between to, cc, and bcc. We found the first duplicate instance of [${email}] in the ${f}.${kind} field.`,
              'message.recipient_errors',
            );
          }
          seen.set(key, kind);
          recipients.push({ email, personalization: i, customArgs: args });
        });
      }
    });
    if (recipients.length > MAX_RECIPIENTS) {
      p.add(
        'personalizations',
        `The total number of recipients must be no more than ${MAX_RECIPIENTS}. This includes all recipients defined within the to, cc, and bcc parameters, across each of the personalizations.`,
        'message.recipient_errors',
      );
    }
  }

  if (body.from === undefined) {
    p.add(
      'from.email',
      'The from object must be provided for every email send. It is an object that requires the email parameter, but may also contain a name parameter.',
      'message.from',
    );
  } else {
    checkAddress(body.from, 'from', p, 'message.from');
  }
  if (body.reply_to !== undefined) checkAddress(body.reply_to, 'reply_to', p, 'message.reply_to');
  if (body.reply_to_list !== undefined) {
    if (body.reply_to !== undefined) p.add('reply_to_list', 'reply_to and reply_to_list cannot both be used.', 'message.reply_to');
    if (!Array.isArray(body.reply_to_list) || body.reply_to_list.length === 0)
      p.add('reply_to_list', 'The reply_to_list must be an array of email objects.', 'message.reply_to');
    else body.reply_to_list.forEach((a: unknown, j) => checkAddress(a, `reply_to_list.${j}`, p, 'message.reply_to'));
  }

  const hasSubject = checkSubject(body.subject, 'subject', p);
  if (!hasSubject && body.subject === undefined && !everyPersonalizationHasSubject && !templateId) {
    p.add(
      'subject',
      'The subject is required. You can get around this requirement if you use a template with a subject defined or if every personalization has a subject defined.',
      'message.subject',
    );
  }

  const content = body.content;
  if (content === undefined) {
    if (!templateId) {
      p.add(
        'content',
        'Unless a valid template_id is provided, the content parameter is required. There must be at least one defined content block. We typically suggest both text/plain and text/html blocks are included, but only one block is required.',
        'message.content',
      );
    }
  } else if (!Array.isArray(content) || content.length === 0) {
    p.add('content', 'The content parameter must be an array with at least one content block.', 'message.content');
  } else {
    const types: string[] = [];
    content.forEach((c: unknown, i) => {
      if (!isObject(c) || typeof c.type !== 'string' || c.type.length === 0 || CRLF.test(c.type)) {
        p.add(`content.${i}.type`, 'The content type must be a string at least one character in length.', 'message.content.type');
      } else {
        types.push(c.type.toLowerCase());
      }
      if (!isObject(c) || typeof c.value !== 'string' || c.value.length === 0) {
        p.add(`content.${i}.value`, 'The content value must be a string at least one character in length.', 'message.content.value');
      }
    });
    const plain = types.indexOf('text/plain');
    const html = types.indexOf('text/html');
    if (plain > 0 || (html > 0 && !(plain === 0 && html === 1))) {
      p.add(
        'content',
        'If present, text/plain and text/html may only be provided in this order, before any other content.',
        'message.content',
      );
    }
  }

  if (body.attachments !== undefined) {
    if (!Array.isArray(body.attachments)) p.add('attachments', 'The attachments parameter must be an array.', 'message.attachments');
    else {
      body.attachments.forEach((a: unknown, i) => {
        const f = `attachments.${i}`;
        if (!isObject(a)) return p.add(f, 'Each attachment must be an object.', 'message.attachments');
        if (typeof a.content !== 'string' || a.content.length === 0)
          p.add(`${f}.content`, 'The attachment content is required.', 'message.attachments.content');
        else {
          const compact = a.content.replace(/\s+/g, '');
          if (compact.length % 4 !== 0 || !BASE64.test(compact))
            p.add(`${f}.content`, 'The attachment content must be base64 encoded.', 'message.attachments.content');
        }
        if (typeof a.filename !== 'string' || a.filename.length === 0 || CRLF.test(a.filename))
          p.add(`${f}.filename`, 'The attachment filename parameter is required.', 'message.attachments.filename');
        if (a.type !== undefined && (typeof a.type !== 'string' || a.type.length === 0 || CRLF.test(a.type)))
          p.add(`${f}.type`, 'The attachment type must be a string at least one character in length.', 'message.attachments.type');
        if (a.disposition !== undefined && a.disposition !== 'inline' && a.disposition !== 'attachment') {
          p.add(`${f}.disposition`, 'The disposition must be either "inline" or "attachment".', 'message.attachments.disposition');
        }
        if (a.disposition === 'inline' && (typeof a.content_id !== 'string' || a.content_id.length === 0)) {
          p.add(`${f}.content_id`, 'The content_id parameter is required if your attachment is inline.', 'message.attachments.content_id');
        }
      });
    }
  }

  let categories: string[] = [];
  if (body.categories !== undefined) {
    if (!Array.isArray(body.categories) || body.categories.some((c) => typeof c !== 'string' || c.length > 255)) {
      p.add('categories', 'The categories must be an array of strings of at most 255 characters.', 'message.categories');
    } else if (body.categories.length > 10) {
      p.add('categories', 'You may not have more than 10 categories per request.', 'message.categories');
    } else {
      categories = body.categories as string[];
    }
  }

  let sandbox = false;
  const mailSettings = body.mail_settings;
  if (isObject(mailSettings) && mailSettings.sandbox_mode !== undefined) {
    const sm = mailSettings.sandbox_mode;
    if (!isObject(sm) || typeof sm.enable !== 'boolean')
      p.add(
        'mail_settings.sandbox_mode.enable',
        'The sandbox_mode enable parameter must be a boolean.',
        'message.mail_settings.sandbox_mode.enable',
      );
    else sandbox = sm.enable;
  }

  return p.list.length ? { errors: p.list } : { mail: { recipients, categories, sandbox } };
}
