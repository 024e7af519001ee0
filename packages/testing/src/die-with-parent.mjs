/**
 * Preloaded (`--import`) into every service a test spawns (process.ts): the service dies with
 * the test process that started it, even when that process is killed (kill -9, a runner's
 * timeout) and its teardown never runs. The test holds this process's stdin pipe; when the
 * test process goes, the pipe ends, and the whole process group (the service and anything it
 * started) is killed. Unreferenced: it never keeps the service alive by itself.
 */
process.stdin.on('end', () => {
  try {
    process.kill(-process.pid, 'SIGKILL');
  } catch {
    process.kill(process.pid, 'SIGKILL');
  }
});
process.stdin.on('data', () => {});
process.stdin.unref();
