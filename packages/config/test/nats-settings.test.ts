import t from 'tap';
import Type from 'typebox';
import { ConfigError, loadConfig, natsServers, natsSettings } from '../src/index.js';

const Schema = Type.Object(natsSettings);

t.test('NATS_URL takes one server or a comma-separated list of them; HATCH_STREAM_REPLICAS defaults to 1', async (t) => {
  const one = loadConfig(Schema, {});
  t.equal(one.NATS_URL, 'nats://127.0.0.1:4222');
  t.equal(one.HATCH_STREAM_REPLICAS, 1);
  t.same(natsServers(one.NATS_URL), ['nats://127.0.0.1:4222']);

  const list = loadConfig(Schema, {
    NATS_URL: 'nats://nats-0:4222, nats://nats-1:4222 ,tls://nats-2.example.com:4222',
    HATCH_STREAM_REPLICAS: '3',
  });
  t.same(natsServers(list.NATS_URL), ['nats://nats-0:4222', 'nats://nats-1:4222', 'tls://nats-2.example.com:4222']);
  t.equal(list.HATCH_STREAM_REPLICAS, 3);
});

t.test('a list with a malformed entry, an empty entry or a bad replica count is refused, naming the setting', async (t) => {
  for (const bad of [
    'nats://a:4222,http://b:4222',
    'nats://a:4222,,nats://b:4222',
    'nats://a:4222,',
    'nats://a:4222 nats://b:4222',
    'a:4222',
  ]) {
    const err = t.throws(() => loadConfig(Schema, { NATS_URL: bad }), `refused: ${bad}`) as unknown as ConfigError;
    t.ok(err instanceof ConfigError);
    t.match(err.problems.join('\n'), /NATS_URL: must be one nats:\/\/ .* separated by commas/);
  }
  for (const bad of ['0', '6', 'three']) {
    const err = t.throws(() => loadConfig(Schema, { HATCH_STREAM_REPLICAS: bad })) as unknown as ConfigError;
    t.match(err.problems.join('\n'), /HATCH_STREAM_REPLICAS: must be an integer >= 1 <= 5/);
  }
});
