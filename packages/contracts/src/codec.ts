/**
 * encode / decode: the one way bytes become typed values at a boundary (NATS payloads, stored
 * JSON). A value that does not match its schema throws ContractError naming every failing path;
 * a worker treats that as a poison message (dead-letter at once, never retry).
 */
import type { Static, TSchema } from 'typebox';
import { Compile } from 'typebox/compile';

export interface ContractIssue {
  path: string;
  message: string;
}

export class ContractError extends Error {
  readonly issues: readonly ContractIssue[];
  constructor(message: string, issues: ContractIssue[]) {
    super(`${message}: ${issues.map((i) => `${i.path || '/'} ${i.message}`).join('; ')}`);
    this.name = 'ContractError';
    this.issues = issues;
  }
}

type Validator = ReturnType<typeof Compile>;
const compiled = new WeakMap<TSchema, Validator>();

export function validatorFor(schema: TSchema): Validator {
  let v = compiled.get(schema);
  if (!v) {
    v = Compile(schema);
    compiled.set(schema, v);
  }
  return v;
}

/** Every failing path of `value` against `schema` (empty when valid). */
export function issuesOf(schema: TSchema, value: unknown): ContractIssue[] {
  const v = validatorFor(schema);
  if (v.Check(value)) return [];
  return v.Errors(value).map((e) => {
    const params = e.params as { requiredProperties?: string[]; additionalProperties?: string[] };
    // "required" / "additionalProperties" errors sit on the parent: name the child path instead.
    const child = params.requiredProperties?.[0] ?? params.additionalProperties?.[0];
    const path =
      child && (e.keyword === 'required' || e.keyword === 'additionalProperties') ? `${e.instancePath}/${child}` : e.instancePath;
    return { path, message: e.message };
  });
}

export function check<S extends TSchema>(schema: S, value: unknown): value is Static<S> {
  return validatorFor(schema).Check(value);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export function encode<S extends TSchema>(schema: S, value: Static<S>): Uint8Array {
  const issues = issuesOf(schema, value);
  if (issues.length) throw new ContractError('refusing to encode an invalid value', issues);
  return encoder.encode(JSON.stringify(value));
}

export function decode<S extends TSchema>(schema: S, input: Uint8Array | string): Static<S> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(typeof input === 'string' ? input : decoder.decode(input));
  } catch (err) {
    throw new ContractError('not valid JSON', [{ path: '', message: (err as Error).message }]);
  }
  const issues = issuesOf(schema, parsed);
  if (issues.length) throw new ContractError('does not match the contract', issues);
  return parsed as Static<S>;
}
