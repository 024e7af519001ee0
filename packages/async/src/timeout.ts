/**
 * withTimeout: the one bounded wait of the project (the database pool and its queries, the bus's
 * ping and drain, the job consumer's and the outbox relay's shutdown drains, the bridge's checks).
 */

/** `p`, or an Error(`message`) (with `code` when given) once `ms` have passed. */
export function withTimeout<T>(p: PromiseLike<T>, ms: number, message: string, code?: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(message), code === undefined ? {} : { code })), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
