/**
 * The provider emulator's development credentials: the one place `pnpm start` (scripts/start.mjs)
 * and `./setup.sh` take them from. They are not secrets: they only open the local emulator,
 * which never talks to Twilio or SendGrid. Each one passes the services' own config checks
 * (an `AC` + 32 hex SID, an E.164 number, an `SG.` key, an email address).
 */
export const DEV_PROVIDERS = Object.freeze({
  emulatorPort: 5090,
  twilio: Object.freeze({
    accountSid: 'ACdec0de00000000000000000000000000',
    authToken: 'dev-emulator-twilio-auth-token',
    phoneNumber: '+15005550006',
  }),
  sendgrid: Object.freeze({
    apiKey: 'SG.dev-emulator.sendgrid-api-key',
    fromEmail: 'hatch@example.com',
  }),
});
