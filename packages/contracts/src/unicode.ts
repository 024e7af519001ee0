/**
 * Lone UTF-16 surrogates: JSON can escape one (`"\ud800"`), but it is no character. UTF-8 cannot
 * encode it (a text parameter silently becomes U+FFFD) and PostgreSQL refuses it inside json /
 * jsonb, where the batch statements pass their rows (a 500, found by the gateway's fuzz test).
 */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const LONE_SURROGATES = new RegExp(LONE_SURROGATE.source, 'g');

export function hasLoneSurrogate(s: string): boolean {
  return LONE_SURROGATE.test(s);
}

/** The string with each lone surrogate replaced by U+FFFD (what a UTF-8 text parameter stores). */
export function wellFormed(s: string): string {
  return s.replace(LONE_SURROGATES, '\ufffd');
}

/** JSON text whose strings are all well formed: safe to cast to jsonb. */
export function wellFormedJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'string' ? wellFormed(v) : v));
}
