export { connectBus, type Bus, type ConnectBusOptions } from './bus.js';
export { ensureStreams, streamConfigs, isApiError, isNotFound, type StreamLimits } from './streams.js';
