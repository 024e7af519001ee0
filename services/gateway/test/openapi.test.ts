/**
 * The OpenAPI document (GET /api/openapi.json) and its UI (/api/docs), issue 16: the document is
 * valid OpenAPI 3.1 by a validator library, every route the gateway registers is in it (and
 * nothing else), its examples pass the routes' own schemas (and the send examples are accepted
 * by the gateway), and both are behind the API's authentication, over a real socket.
 */
import t from 'tap';
import type { RouteOptions } from 'fastify';
import type { TSchema } from 'typebox';
import type { Teardownable } from '@hatch/testing';
import { Validator } from '@seriousme/openapi-schema-validator';
import { ErrorBody, validatorFor } from '@hatch/contracts';
import { newSessionCookie, SESSION_COOKIE } from '../src/auth.js';
import { UI_CSP } from '../src/web.js';
import { listening, testGateway, type TestGateway } from './helpers.js';

interface Operation {
  operationId?: string;
  requestBody?: { content: Record<string, Media> };
  responses: Record<string, { content?: Record<string, Media> }>;
}
interface Media {
  schema?: { examples?: unknown[]; properties?: { code?: { enum?: string[] } } };
  example?: unknown;
  examples?: Record<string, { value: unknown }>;
}
type Doc = { openapi: string; paths: Record<string, Record<string, Operation>> };

/** Routes the document leaves out on purpose: the web UI's files, the /api 404 catch-all, the document's own UI. */
const NOT_API = (url: string) => ['/', '/*', '/api/', '/api/*'].includes(url) || url === '/api/docs' || url.startsWith('/api/docs/');

const toOpenApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

async function gatewayWithRoutes(t: Teardownable): Promise<{ g: TestGateway; routes: RouteOptions[] }> {
  const routes: RouteOptions[] = [];
  const g = await testGateway(t, { HATCH_RATE_LIMIT_PER_MINUTE: '100000' }, { build: { onRoute: (r) => void routes.push(r) } });
  return { g, routes };
}

async function documentOf(g: TestGateway): Promise<Doc> {
  const res = await g.app.inject({ method: 'GET', url: '/api/openapi.json', headers: g.auth });
  if (res.statusCode !== 200) throw new Error(`GET /api/openapi.json: ${res.statusCode} ${res.body}`);
  return res.json<Doc>();
}

/** Every example of a media object: `example`, `examples.*.value`, and its schema's `examples`. */
function examplesOf(media: Media): unknown[] {
  return [
    ...(media.example !== undefined ? [media.example] : []),
    ...Object.values(media.examples ?? {}).map((e) => e.value),
    ...(media.schema?.examples ?? []),
  ];
}

/** How many examples the document holds anywhere (so none escapes the checks below). */
function countExamples(node: unknown): number {
  if (Array.isArray(node)) return node.reduce((n: number, v) => n + countExamples(v), 0);
  if (!node || typeof node !== 'object') return 0;
  let n = 0;
  for (const [k, v] of Object.entries(node)) {
    if (k === 'example') n += 1;
    else if (k === 'examples' && Array.isArray(v)) n += v.length;
    else if (k === 'examples' && v && typeof v === 'object') n += Object.keys(v).length;
    else n += countExamples(v);
  }
  return n;
}

t.test('the document is valid OpenAPI 3.1 (by a validator), and holds every registered route and nothing else', async (t) => {
  const { g, routes } = await gatewayWithRoutes(t);
  const doc = await documentOf(g);
  t.equal(doc.openapi, '3.1.0');
  const validator = new Validator();
  const result = await validator.validate(structuredClone(doc));
  t.same(result.errors ?? [], [], 'no validation errors');
  t.ok(result.valid, 'valid');
  t.equal(validator.version, '3.1', 'validated as OpenAPI 3.1');

  const expected = new Set<string>();
  for (const r of routes) {
    for (const method of [r.method].flat()) {
      if (method === 'HEAD' || NOT_API(r.url)) continue; // HEAD: Fastify's twin of a GET
      expected.add(`${method.toLowerCase()} ${toOpenApiPath(r.url)}`);
    }
  }
  const documented = new Set(Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`)));
  t.ok(expected.size >= 18, `${expected.size} routes registered`);
  t.same(
    [...expected].filter((k) => !documented.has(k)),
    [],
    'every registered route is in the document',
  );
  t.same(
    [...documented].filter((k) => !expected.has(k)),
    [],
    'every documented operation is a registered route',
  );
  for (const key of [
    'post /api/send_message',
    'get /api/events',
    'post /api/session',
    'post /webhooks/twilio/status',
    'post /webhooks/twilio/sms',
    'post /webhooks/sendgrid/events',
  ]) {
    t.ok(documented.has(key), `${key} is documented`);
  }
  t.ok(
    routes.some((r) => r.url === '/api/docs'),
    'the UI is a route of its own (left out of the document)',
  );
});

t.test('what the document says of routes: errors per route, auth schemes, Idempotency-Key, the event stream', async (t) => {
  const { g } = await gatewayWithRoutes(t);
  const doc = (await documentOf(g)) as Doc & {
    components: { securitySchemes: Record<string, { type: string; scheme?: string; in?: string; name?: string }> };
  };
  t.match(doc.components.securitySchemes, {
    bearerAuth: { type: 'http', scheme: 'bearer' },
    sessionCookie: { type: 'apiKey', in: 'cookie', name: SESSION_COOKIE },
  });
  const send = doc.paths['/api/send_message']?.post as Operation & { security: unknown; parameters: Array<{ in: string; name: string }> };
  t.same(Object.keys(send.responses).sort(), ['202', '400', '401', '409', '413', '415', '422', '429', '503']);
  t.same(send.responses['422']?.content?.['application/json']?.schema?.properties?.code?.enum?.sort(), [
    'IDEMPOTENCY_KEY_REUSED',
    'RECIPIENT_OPTED_OUT',
    'SMS_COUNTRY_NOT_ALLOWED',
    'SMS_DAILY_LIMIT_REACHED',
  ]);
  t.same(send.security, [{ bearerAuth: [] }, { sessionCookie: [] }]);
  t.ok(
    send.parameters.some((p) => p.in === 'header' && p.name === 'idempotency-key'),
    'Idempotency-Key documented',
  );
  t.same(Object.keys(doc.paths['/api/messages/{id}']?.get?.responses ?? {}).sort(), ['200', '400', '401', '404', '429', '503']);
  const login = doc.paths['/api/session']?.post as Operation & { security?: unknown };
  t.equal(login.security, undefined, 'signing in needs no credential');
  t.ok(login.responses['204'] && login.responses['401'], 'sign-in: 204 or 401');
  const events = doc.paths['/api/events']?.get as Operation;
  const stream = events.responses['200']?.content?.['text/event-stream']?.schema as {
    oneOf?: Array<{ properties: { type: { enum: string[] } } }>;
  };
  t.same(
    stream.oneOf?.map((s) => s.properties.type.enum[0]),
    ['connected', 'message_update', 'email_update', 'reset'],
    'the SSE event payloads',
  );
  t.same(Object.keys(events.responses).sort(), ['200', '400', '401', '406', '429', '503']);
  const twilio = doc.paths['/webhooks/twilio/status']?.post as Operation & { security: unknown };
  t.same(twilio.security, [{ twilioSignature: [] }]);
  t.ok(twilio.requestBody?.content['application/x-www-form-urlencoded'], 'the form body is documented');
  t.ok(twilio.responses['403'], '403 on a bad signature');
});

t.test("the document's examples pass the routes' own schemas, and the gateway accepts the send examples", async (t) => {
  const { g, routes } = await gatewayWithRoutes(t);
  const doc = await documentOf(g);
  const routeOf = (method: string, path: string) =>
    routes.find((r) => [r.method].flat().includes(method.toUpperCase()) && toOpenApiPath(r.url) === path);
  const check = (label: string, schema: unknown, value: unknown) => {
    const v = validatorFor(schema as TSchema);
    if (!t.ok(v.Check(value), `${label}: ${JSON.stringify(value).slice(0, 80)}`))
      t.comment(JSON.stringify([...v.Errors(value)].slice(0, 3)));
  };
  let checked = 0;
  const requestExamples = new Map<string, unknown[]>();
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const route = routeOf(method, path);
      if (!route) throw new Error(`no route for ${method} ${path}`);
      for (const media of Object.values(op.requestBody?.content ?? {})) {
        const own = route.schema?.body ?? route.config?.openapi?.body?.schema;
        for (const ex of examplesOf(media)) {
          check(`${method} ${path} request`, own, ex);
          checked++;
          requestExamples.set(`${method} ${path}`, [...(requestExamples.get(`${method} ${path}`) ?? []), ex]);
        }
      }
      for (const [status, response] of Object.entries(op.responses)) {
        for (const media of Object.values(response.content ?? {})) {
          const examples = examplesOf(media);
          const own = (route.schema?.response as Record<string, unknown> | undefined)?.[status];
          for (const ex of examples) {
            if (own) check(`${method} ${path} ${status}`, own, ex);
            else {
              // An error answer: the contract's error body, with a code this status documents.
              check(`${method} ${path} ${status} (error body)`, ErrorBody, ex);
              t.ok(
                media.schema?.properties?.code?.enum?.includes((ex as { code: string }).code),
                `${method} ${path} ${status}: the example's code is one of the status's`,
              );
            }
            checked++;
          }
        }
      }
    }
  }
  t.equal(checked, countExamples(doc.paths), 'every example in the document was checked');
  for (const op of ['post /api/send_message', 'post /api/send_email', 'post /api/session'])
    t.ok((requestExamples.get(op)?.length ?? 0) > 0, `${op} has request examples`);

  for (const op of ['/api/send_message', '/api/send_email']) {
    for (const payload of requestExamples.get(`post ${op}`) ?? []) {
      const res = await g.app.inject({ method: 'POST', url: op, headers: g.auth, payload: payload as object });
      t.equal(res.statusCode, 202, `${op} accepts its example ${JSON.stringify(payload).slice(0, 60)}: ${res.body.slice(0, 120)}`);
    }
  }
});

t.test(
  'GET /api/openapi.json and /api/docs are behind the API authentication, and the UI is served from the gateway under its CSP',
  async (t) => {
    const { g } = await gatewayWithRoutes(t);
    const base = `http://127.0.0.1:${await listening(g)}`;
    const cookie = await newSessionCookie(g.app);

    for (const path of [
      '/api/openapi.json',
      '/api/docs',
      '/api/docs/',
      '/api/docs/json',
      '/api/docs/static/swagger-ui-bundle.js',
      '/api/docs/static/swagger-initializer.js',
    ]) {
      const res = await fetch(`${base}${path}`);
      t.equal(res.status, 401, `${path} without a credential: 401`);
      t.match(await res.json(), { success: false, code: 'UNAUTHORIZED' }, `${path}: the error shape`);
      const wrong = await fetch(`${base}${path}`, { headers: { authorization: 'Bearer wrong-token-0123456789' } });
      t.equal(wrong.status, 401, `${path} with a wrong token: 401`);
    }

    const doc = await fetch(`${base}/api/openapi.json`, { headers: { authorization: g.auth.authorization } });
    t.equal(doc.status, 200, 'the document with the token');
    t.match(doc.headers.get('content-type'), /^application\/json/);
    t.equal(((await doc.json()) as Doc).openapi, '3.1.0');

    // A browser signed in to the web UI: its session cookie.
    const page = await fetch(`${base}/api/docs`, { headers: { cookie } });
    t.equal(page.status, 200, 'the UI with the session cookie');
    t.match(page.headers.get('content-type'), /^text\/html/);
    t.equal(page.headers.get('content-security-policy'), UI_CSP, "the web UI's CSP");
    const html = await page.text();
    t.match(html, /<div id="swagger-ui">/);
    t.notMatch(html, /<script>|<style|\sstyle=|\son[a-z]+=/i, 'no inline script or style for the CSP to refuse');
    const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] as string);
    t.ok(assets.length >= 5, `${assets.length} assets`);
    t.same(
      assets.filter((a) => !a.startsWith('/api/docs/static/')),
      [],
      'every asset comes from the gateway (no CDN)',
    );
    const types = new Set<string>();
    for (const asset of assets) {
      const res = await fetch(`${base}${asset}`, { headers: { cookie } });
      t.equal(res.status, 200, `${asset}: 200`);
      const type = res.headers.get('content-type') ?? '';
      types.add(type.split(';')[0] as string);
      t.equal(res.headers.get('content-security-policy'), UI_CSP, `${asset}: the CSP`);
      const body = await res.text();
      t.notMatch(body, /https?:\/\/(?:cdn|unpkg|fonts\.googleapis)/, `${asset}: loads nothing from a CDN`);
    }
    t.ok(types.has('application/javascript') && types.has('text/css'), `scripts and styles served: ${[...types].join(', ')}`);
    const initializer = await fetch(`${base}/api/docs/static/swagger-initializer.js`, { headers: { cookie } });
    t.match(await initializer.text(), /resolveUrl\('\.\/json'\)/, 'the UI loads the document from /api/docs/json');
    const copy = await fetch(`${base}/api/docs/json`, { headers: { cookie } });
    t.equal(copy.status, 200);
    t.same(
      await copy.json(),
      await (await fetch(`${base}/api/openapi.json`, { headers: { cookie } })).json(),
      "the UI's copy is the document",
    );
  },
);
