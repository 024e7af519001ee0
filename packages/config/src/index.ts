/**
 * loadConfig(schema, env): the only place that reads the environment.
 *
 * Every property of the TypeBox object schema is one variable. A secret `NAME` may instead be
 * given as `NAME_FILE` (a path; the file's content, trailing newline trimmed, is the value), the
 * way Docker and Kubernetes mount secrets. Strings are coerced to the schema's number / integer /
 * boolean types; defaults apply; every missing or malformed setting is reported at once so an
 * operator fixes them in one go.
 */
import fs from 'node:fs';
import Type, { type Static, type TObject, type TSchema } from 'typebox';
import { Value } from 'typebox/value';

export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: string[]) {
    super(`invalid configuration: ${problems.join('; ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

type Env = Record<string, string | undefined>;

function schemaType(schema: TSchema): string | undefined {
  const s = schema as { type?: unknown; anyOf?: TSchema[] };
  if (typeof s.type === 'string') return s.type;
  if (Array.isArray(s.anyOf)) {
    for (const sub of s.anyOf) {
      const t = schemaType(sub);
      if (t && t !== 'null') return t;
    }
  }
  return undefined;
}

function coerce(raw: string, schema: TSchema): unknown {
  switch (schemaType(schema)) {
    case 'integer':
    case 'number': {
      const trimmed = raw.trim();
      if (!/^-?\d+(\.\d+)?$/.test(trimmed)) return raw; // left as a string: validation names it
      return Number(trimmed);
    }
    case 'boolean': {
      const v = raw.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(v)) return true;
      if (['0', 'false', 'no', 'off'].includes(v)) return false;
      return raw;
    }
    default:
      return raw;
  }
}

function describe(schema: TSchema): string {
  const s = schema as Record<string, unknown> & { pattern?: string; format?: string };
  const type = schemaType(schema);
  const parts: string[] = [];
  if (type === 'integer') parts.push('an integer');
  else if (type === 'number') parts.push('a number');
  else if (type === 'boolean') parts.push('true or false');
  else if (Array.isArray(s.enum)) parts.push(`one of ${(s.enum as unknown[]).map((l) => JSON.stringify(l)).join(', ')}`);
  // a description, when the schema has one, says it better than its pattern
  else if (typeof s.description === 'string') parts.push(s.description);
  else if (s.pattern) parts.push(`matching ${String(s.pattern)}`);
  else if (s.format) parts.push(`a ${String(s.format)}`);
  else parts.push('a non-empty string');
  if (typeof s.minimum === 'number') parts.push(`>= ${s.minimum}`);
  if (typeof s.maximum === 'number') parts.push(`<= ${s.maximum}`);
  return parts.join(' ');
}

/** Reads, coerces, defaults and validates; throws ConfigError listing every problem. */
export function loadConfig<S extends TObject>(schema: S, env: Env = process.env): Readonly<Static<S>> {
  const problems: string[] = [];
  const out: Record<string, unknown> = {};
  const required = new Set<string>((schema as { required?: string[] }).required ?? []);
  for (const [key, prop] of Object.entries<TSchema>(schema.properties)) {
    const secret = readSetting(env, key);
    if ('problem' in secret) {
      problems.push(secret.problem);
      continue;
    }
    const raw = secret.value;
    if (raw === undefined || raw === '') {
      const def = (prop as { default?: unknown }).default;
      if (def !== undefined) out[key] = def;
      else if (required.has(key)) problems.push(`${key}: missing (must be ${describe(prop)})`);
      continue;
    }
    const value = coerce(raw, prop);
    if (!Value.Check(prop, value)) {
      const shown = /SECRET|TOKEN|PASSWORD|KEY/.test(key) ? '<hidden>' : JSON.stringify(raw);
      problems.push(`${key}: must be ${describe(prop)} (got ${shown})`);
      continue;
    }
    out[key] = value;
  }
  if (problems.length) throw new ConfigError(problems);
  return Object.freeze(out) as Readonly<Static<S>>;
}

/** loadConfig for a service's main.ts: the config, or one line per problem and exit 1 (configOrExit). */
export function loadConfigOrExit<S extends TObject>(service: string, schema: S, env: Env = process.env): Readonly<Static<S>> {
  return configOrExit(service, () => loadConfig(schema, env));
}

/**
 * The one reading of a setting: `NAME`, else the content of the file `NAME_FILE` names (trailing
 * newline trimmed), else undefined; a `NAME_FILE` that cannot be read is a problem to report.
 */
export function readSetting(env: Env, key: string): { value: string | undefined } | { problem: string } {
  const raw = env[key];
  const file = env[`${key}_FILE`];
  if ((raw !== undefined && raw !== '') || !file) return { value: raw };
  try {
    return { value: fs.readFileSync(file, 'utf8').replace(/\r?\n$/, '') };
  } catch (err) {
    return { problem: `${key}_FILE: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})` };
  }
}

/** DATABASE_URL, else built from POSTGRES_HOST/PORT/USER/PASSWORD/DB (contract), else local default. */
export function databaseUrlFrom(env: Env = process.env): string {
  // an unreadable *_FILE counts as unset here; loadConfig reports it (envWithDatabaseUrl keeps it)
  const readSecret = (k: string): string | undefined => {
    const r = readSetting(env, k);
    return 'value' in r && r.value ? r.value : undefined;
  };
  const direct = readSecret('DATABASE_URL');
  if (direct) return direct;
  if (env.POSTGRES_HOST) {
    const user = encodeURIComponent(env.POSTGRES_USER ?? 'postgres');
    const pw = readSecret('POSTGRES_PASSWORD');
    const auth = pw ? `${user}:${encodeURIComponent(pw)}` : user;
    return `postgres://${auth}@${env.POSTGRES_HOST}:${env.POSTGRES_PORT ?? '5432'}/${env.POSTGRES_DB ?? 'hatch'}`;
  }
  return 'postgres://localhost:5432/hatch';
}

/** pino levels, the one definition for every service's LOG_LEVEL. */
export const LogLevel = Type.Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, { default: 'info' });

/** The PostgreSQL settings of every service that has a pool (gateway and workers); spread into its schema. */
export function databaseSettings(poolMaxDefault: number) {
  return {
    DATABASE_URL: Type.String({ pattern: '^postgres(ql)?://' }),
    DATABASE_POOL_MAX: Type.Integer({ minimum: 1, maximum: 200, default: poolMaxDefault }),
  };
}

/** One NATS server URL (no comma or space inside: NATS_URL separates servers with commas). */
const NATS_SERVER = '(nats|tls|ws|wss)://[^,\\s]+';

/**
 * NATS_URL's servers, in order: a comma-separated list (spaces around the commas allowed), so a
 * client connects to, and reconnects to, any node of a cluster. The one reading of the list.
 */
export function natsServers(url: string): string[] {
  return url
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** The NATS settings of every service on the bus (gateway and workers); spread into its schema. */
export const natsSettings = {
  NATS_URL: Type.String({
    pattern: `^\\s*${NATS_SERVER}(\\s*,\\s*${NATS_SERVER})*\\s*$`,
    description: 'one nats:// (or tls://, ws://, wss://) URL, or several separated by commas (the nodes of a cluster)',
    default: 'nats://127.0.0.1:4222',
  }),
  HATCH_NATS_PREFIX: Type.String({ pattern: '^[A-Za-z][A-Za-z0-9_]{0,30}$', default: 'HATCH' }),
  /**
   * Copies of each stream and durable consumer the cluster keeps (num_replicas): 1 on a single
   * server, 3 on a three-node cluster (a node may then be lost without losing the stream). A
   * single server refuses more than 1. Every replica of every service must use the same value:
   * each brings the streams to its configuration at start.
   */
  HATCH_STREAM_REPLICAS: Type.Integer({ minimum: 1, maximum: 5, default: 1 }),
};

/** What a loaded config holds of databaseSettings and natsSettings (openPoolAndBus reads it). */
export type DatabaseSettings = Static<TObject<ReturnType<typeof databaseSettings>>>;
export type NatsSettings = Static<TObject<typeof natsSettings>>;

/** Settings every worker shares (contract configuration table); spread into its own schema. */
export function workerSettings(healthPortDefault: number) {
  return {
    ...databaseSettings(10),
    ...natsSettings,
    HEALTH_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: healthPortDefault }),
    LOG_LEVEL: LogLevel,
  };
}

/** What a worker's loaded config holds of workerSettings (runWorkerProcess reads it). */
export type WorkerSettings = Static<TObject<ReturnType<typeof workerSettings>>>;

/**
 * The environment with DATABASE_URL resolved from its parts (contract default chain). An
 * unreadable DATABASE_URL_FILE is left for loadConfig to report rather than replaced by the
 * local default (a mounted secret that went missing must not point a service at localhost).
 */
export function envWithDatabaseUrl(env: Env = process.env): Env {
  if (env.DATABASE_URL_FILE && !env.DATABASE_URL && 'problem' in readSetting(env, 'DATABASE_URL')) return env;
  return { ...env, DATABASE_URL: databaseUrlFrom(env) };
}

/**
 * For a service's main.ts: `parse()`'s config, or one line per problem on stderr and exit code
 * 1 (an operator reads these in `kubectl logs` / compose output, so no stack trace).
 */
export function configOrExit<T>(service: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const p of err.problems) process.stderr.write(`${service}: config error: ${p}\n`);
    process.exit(1);
  }
}
