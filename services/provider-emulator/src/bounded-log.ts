/**
 * BoundedLog: an append-only record list with a cap on entries (and optionally on bytes); the
 * oldest entries are dropped first. The emulator runs for days under `pnpm start` and through
 * whole benchmarks, so its memory must not grow with traffic (issue 4: "bounded memory").
 * A Map keeps insertion order, so evicting the oldest entry is O(1).
 */
export class BoundedLog<T extends { seq: number }> {
  private readonly items = new Map<number, { value: T; bytes: number }>();
  private bytes = 0;
  private nextSeq = 1;
  /** entries dropped to respect the caps since start (not counting clear()) */
  evicted = 0;

  constructor(
    private readonly maxItems: number,
    private readonly maxBytes: number = Number.POSITIVE_INFINITY,
    private readonly onEvict: (value: T) => void = () => {},
  ) {
    if (!Number.isInteger(maxItems) || maxItems < 1) throw new RangeError('maxItems must be a positive integer');
  }

  /** Appends the value built for the next sequence number; `bytes` counts against maxBytes. */
  add(build: (seq: number) => T, bytes = 0): T {
    const value = build(this.nextSeq++);
    this.items.set(value.seq, { value, bytes });
    this.bytes += bytes;
    // Keep at least the newest entry even when it alone exceeds the byte budget: a test that
    // sends one large email must still be able to read it back.
    while (this.items.size > this.maxItems || (this.bytes > this.maxBytes && this.items.size > 1)) {
      const oldest = this.items.entries().next();
      if (oldest.done) break;
      const [seq, entry] = oldest.value;
      this.items.delete(seq);
      this.bytes -= entry.bytes;
      this.evicted++;
      this.onEvict(entry.value);
    }
    return value;
  }

  /** Oldest first. */
  list(): T[] {
    return Array.from(this.items.values(), (e) => e.value);
  }

  /** Newest first, lazily (the Twilio list API pages through these). */
  *newestFirst(): Generator<T> {
    const values = this.list();
    for (let i = values.length - 1; i >= 0; i--) yield values[i] as T;
  }

  get size(): number {
    return this.items.size;
  }

  clear(): void {
    for (const { value } of this.items.values()) this.onEvict(value);
    this.items.clear();
    this.bytes = 0;
  }
}
