export { waitFor, waitForValue, type WaitOptions } from './wait.js';
export {
  createTestDb,
  createEmptyDatabase,
  ensureTemplate,
  dropTemplate,
  dropRunDatabases,
  testAdminUrl,
  testRunId,
  urlForDatabase,
  TEST_DB_PREFIX,
  type TestDb,
  type Teardownable,
} from './db.js';
export { testNats, testNatsUrl, deleteStreamsWithPrefix, type TestNats } from './nats.js';
export { spawnService, REPO_ROOT, type ServiceProcess } from './process.js';
export { freePort } from './ports.js';
export { processGone } from './watchdog.js';
export { spawnNats, type SpawnedNats, type SpawnNatsOptions } from './spawn-nats.js';
export { spawnNatsCluster, type SpawnedNatsCluster, type SpawnNatsClusterOptions } from './spawn-nats-cluster.js';
export { spawnPostgres, type SpawnedPostgres, type SpawnPostgresOptions, type PostgresStopMode } from './spawn-postgres.js';
export { boundedTeardown } from './teardown.js';
