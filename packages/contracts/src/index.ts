export * from './codec.js';
export * from './status.js';
export * from './subjects.js';
export * from './identity.js';
export * from './jobs.js';
export * from './events.js';
export * from './http.js';
export * from './sms.js';
