export * from './index.js';
export { conversationIdFor } from './conversation-id.js';
export { newRecordId } from './record-id.js';
