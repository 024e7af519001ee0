import t from 'tap';
import Type from 'typebox';
import { type ConfigError, LogLevel, loadConfig } from '../src/index.js';

t.test('LOG_LEVEL defaults to info and names the allowed levels when wrong', async (t) => {
  const S = Type.Object({ LOG_LEVEL: LogLevel });
  t.equal(loadConfig(S, {}).LOG_LEVEL, 'info');
  t.equal(loadConfig(S, { LOG_LEVEL: 'debug' }).LOG_LEVEL, 'debug');
  const err = t.throws(() => loadConfig(S, { LOG_LEVEL: 'loud' })) as unknown as ConfigError;
  t.match(err.problems[0], /LOG_LEVEL: must be one of "fatal", "error", "warn", "info", "debug", "trace", "silent" \(got "loud"\)/);
});
