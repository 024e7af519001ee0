export * from './index.js';
export { conversationIdFor } from './conversation-id.js';
