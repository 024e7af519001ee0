/** Shared helpers of the ops tests: run a command, render YAML documents. */
import { execFile } from 'node:child_process';
import { parseAllDocuments } from 'yaml';
import { GatewayConfig } from '../../services/gateway/src/config.js';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end (never rejects: the exit code is part of the answer). */
export function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      { cwd: opts.cwd, env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 32 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 127) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** A command the ops tests need; `pnpm test` checks and installs it first (scripts/test-tools.mjs), so missing is a failure, not a skip. */
export async function requireTool(name: string): Promise<void> {
  const r = await run('sh', ['-c', `command -v ${name}`]);
  if (r.code !== 0)
    throw new Error(
      `${name} is not installed (apt-get install ${name === 'kubectl' ? 'kubernetes-client' : name}); pnpm test's preflight (scripts/test-tools.mjs) installs it`,
    );
}

// Rendered manifests are plain data; tests walk them by path.
export type Doc = Record<string, any>;

export function yamlDocs(text: string): Doc[] {
  return parseAllDocuments(text)
    .map((d) => d.toJSON() as Doc | null)
    .filter((d): d is Doc => d !== null);
}

/** The gateway's accounts settings (issue 18) the compose file and the k8s ConfigMap set, each with its default as the manifests write it. */
export const ACCOUNTS_SETTINGS = (
  [
    'HATCH_SESSION_IDLE_HOURS',
    'HATCH_SESSION_MAX_DAYS',
    'HATCH_INVITE_HOURS',
    'HATCH_AUDIT_RETENTION_DAYS',
    'HATCH_PASSWORD_HASH_CONCURRENCY',
    'HATCH_PASSWORD_HASH_QUEUE_MAX',
  ] as const
).map((key) => ({ key, value: String((GatewayConfig.properties[key] as { default?: number }).default) }));
