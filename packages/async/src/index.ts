export { withTimeout } from './timeout.js';
