/**
 * Webhook signatures exactly as the providers compute them, so Hatch verifies the emulator's
 * callbacks with the real SDK helpers (`twilio.validateRequest`, `@sendgrid/eventwebhook`).
 */
import { createHmac, createPrivateKey, createPublicKey, generateKeyPairSync, sign, timingSafeEqual, type KeyObject } from 'node:crypto';

export type FormParams = Record<string, string | string[]>;

/**
 * X-Twilio-Signature (docs/reliability.md#twilio): HMAC-SHA1 with the auth token over the full URL
 * followed by every POST parameter sorted by name as name+value (repeated parameters: each
 * distinct value, sorted), base64. Mirrors twilio-node's getExpectedTwilioSignature.
 */
export function twilioSignature(authToken: string, url: string, params: FormParams): string {
  let data = url;
  for (const key of Object.keys(params).sort()) {
    const value = params[key];
    if (Array.isArray(value)) for (const v of [...new Set(value)].sort()) data += key + v;
    else if (value !== undefined) data += key + value;
  }
  return createHmac('sha1', authToken).update(Buffer.from(data, 'utf8')).digest('base64');
}

/** x-www-form-urlencoded body of the params, repeated keys for arrays (as Twilio sends them). */
export function formBody(params: FormParams): string {
  const out = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (Array.isArray(v)) for (const item of v) out.append(k, item);
    else out.append(k, v);
  }
  return out.toString();
}

export interface SendGridSigner {
  /** SubjectPublicKeyInfo PEM */
  publicKeyPem: string;
  /** base64 DER SubjectPublicKeyInfo: the form SendGrid shows under Mail Settings and that
   * `EventWebhook.convertPublicKeyToECDSA` and SENDGRID_WEBHOOK_PUBLIC_KEY take */
  publicKeyBase64: string;
  /** base64 DER ECDSA-SHA256 signature over timestamp + body */
  sign(timestamp: string, body: string): string;
}

/**
 * The Signed Event Webhook key pair (docs/reliability.md#sendgrid): ECDSA P-256. A PEM private key
 * (PKCS#8 or SEC1) keeps the public key stable across restarts; otherwise a fresh pair is made.
 */
export function createSendGridSigner(privateKeyPem?: string): SendGridSigner {
  let privateKey: KeyObject;
  if (privateKeyPem) {
    // Env files often carry PEMs on one line with literal "\n".
    privateKey = createPrivateKey(privateKeyPem.includes('\\n') ? privateKeyPem.replace(/\\n/g, '\n') : privateKeyPem);
    const curve = privateKey.asymmetricKeyDetails?.namedCurve;
    if (privateKey.asymmetricKeyType !== 'ec' || curve !== 'prime256v1') {
      throw new Error(
        `the SendGrid signing key must be an EC P-256 private key (got ${privateKey.asymmetricKeyType ?? 'unknown'}${curve ? ` ${curve}` : ''})`,
      );
    }
  } else {
    privateKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  }
  const publicKey = createPublicKey(privateKey);
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return {
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    publicKeyBase64: der.toString('base64'),
    sign(timestamp, body) {
      // DER (ASN.1) encoding is Node's default for EC signatures and what SendGrid sends.
      return sign('sha256', Buffer.from(timestamp + body, 'utf8'), privateKey).toString('base64');
    },
  };
}

/** Constant-time comparison of a presented credential with the configured one. */
export function secretsEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}
