import { createPublicKey, type KeyObject } from 'node:crypto';
import { ConfigError } from '@hatch/config';

function parseKey(text: string): KeyObject | undefined {
  try {
    return text.includes('BEGIN')
      ? createPublicKey(text.replace(/\\n/g, '\n'))
      : createPublicKey({ key: Buffer.from(text.replace(/\s+/g, ''), 'base64'), format: 'der', type: 'spki' });
  } catch {
    return undefined; // reported below, as any other key that is not one
  }
}

/**
 * SENDGRID_WEBHOOK_PUBLIC_KEY as a key object: base64 DER SubjectPublicKeyInfo (what SendGrid
 * shows under Mail Settings, and what the provider emulator logs) or PEM (also on one line with
 * literal "\n"). Anything that is not an EC P-256 public key is a ConfigError, so a pasted-wrong
 * key stops the gateway at start with one line instead of refusing every event later.
 */
export function sendgridPublicKeyOption(text: string | undefined): KeyObject | undefined {
  if (text === undefined) return undefined;
  const key = parseKey(text);
  if (key?.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new ConfigError(['SENDGRID_WEBHOOK_PUBLIC_KEY: must be the EC P-256 verification key SendGrid shows (base64 DER) or its PEM']);
  }
  return key;
}
