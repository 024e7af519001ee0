/** SendGrid's error answers: the v3 error body and the answers of emulated faults. */
import type { Fault } from './faults.js';

export interface SendGridError {
  message: string;
  field: string | null;
  help: string | null;
}

export function sendgridErrors(...errors: Array<[string | null, string]>): { errors: SendGridError[] } {
  return { errors: errors.map(([field, message]) => ({ message, field, help: null })) };
}

/** The answer to a mail send that a fault refuses: status, error body and headers as SendGrid sends them. */
export function faultAnswer(f: Fault): [number, { errors: SendGridError[] }, Record<string, string>] {
  switch (f.kind) {
    case '429': {
      const reset = Math.floor(Date.now() / 1000) + (f.retryAfterSeconds ?? 1);
      return [
        429,
        sendgridErrors([null, f.message ?? 'too many requests']),
        { 'x-ratelimit-limit': '600', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(reset) },
      ];
    }
    case '500':
      return [500, sendgridErrors([null, f.message ?? 'internal error']), {}];
    case '503':
      return [
        503,
        sendgridErrors([null, f.message ?? 'service unavailable']),
        f.retryAfterSeconds !== undefined ? { 'retry-after': String(f.retryAfterSeconds) } : {},
      ];
    default: {
      const status = f.code ?? 400;
      const message = f.message ?? (status === 403 ? 'access forbidden' : status === 413 ? 'Payload Too Large' : 'Bad Request');
      return [status, sendgridErrors([null, message]), {}];
    }
  }
}
