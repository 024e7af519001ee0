/**
 * Twilio's error answers: the error body of the REST API and the error codes the emulator
 * answers with (refusals, faults) or reports as a message's delivery ErrorCode.
 */
import type { Fault } from './faults.js';

export interface TwilioErrorBody {
  code: number;
  message: string;
  more_info: string;
  status: number;
}

export function twilioError(code: number, status: number, message: string): TwilioErrorBody {
  return { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status };
}

/** HTTP status and message of the Twilio codes faults are likely to name. */
const KNOWN_ERRORS: Record<number, [number, string]> = {
  20003: [401, 'Authenticate'],
  20404: [404, 'The requested resource was not found'],
  20429: [429, 'Too Many Requests'],
  20500: [500, 'Internal Server Error'],
  20503: [503, 'Service Unavailable'],
  14107: [400, 'SMS send rate limit exceeded'],
  21211: [400, "Invalid 'To' Phone Number"],
  21408: [400, "Permission to send an SMS has not been enabled for the region indicated by the 'To' number"],
  21606: [400, "The 'From' phone number provided is not a valid message-capable Twilio phone number for this destination"],
  21608: [400, 'The number is unverified. Trial accounts cannot send messages to unverified numbers'],
  21610: [400, 'Attempt to send to unsubscribed recipient'],
  21611: [400, "This 'From' number has exceeded the maximum number of queued messages"],
  21612: [400, "The 'To' phone number is not currently reachable using the 'From' phone number via SMS"],
  21614: [400, "'To' number is not a valid mobile number"],
  21617: [400, 'The concatenated message body exceeds the 1600 character limit'],
};

/** ErrorCode descriptions of delivery failures (error_message of the resource). */
const DELIVERY_ERRORS: Record<number, string> = {
  30001: 'Queue overflow',
  30002: 'Account suspended',
  30003: 'Unreachable destination handset',
  30004: 'Message blocked',
  30005: 'Unknown destination handset',
  30006: 'Landline or unreachable carrier',
  30007: 'Message filtered',
  30008: 'Unknown error',
};

/** The error answer of a fault that names a code (or none: 20500). */
export function faultError(f: Fault): TwilioErrorBody {
  const code = f.code ?? 20500;
  const known = KNOWN_ERRORS[code];
  const status = f.status ?? known?.[0] ?? 400;
  return twilioError(code, status, f.message ?? known?.[1] ?? `Emulated Twilio error ${code}`);
}

/** error_message of a message that ended undelivered or failed with this ErrorCode. */
export function deliveryErrorMessage(code: number): string {
  return DELIVERY_ERRORS[code] ?? KNOWN_ERRORS[code]?.[1] ?? 'Delivery failed';
}
