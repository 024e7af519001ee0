/**
 * k8s/ (issue 9): every overlay renders with `kubectl kustomize`, and the rendered YAML keeps the
 * invariants a production rollout depends on.
 */
import path from 'node:path';
import t from 'tap';
import { REPO_ROOT } from '@hatch/testing';
import { ACCOUNTS_SETTINGS, requireTool, run, yamlDocs, type Doc } from './tools.js';

const HATCH = ['gateway', 'sms-sender', 'email-sender', 'realtime-bridge'];
/** the longest shutdown bound of a service (@hatch/service worker-process / gateway main) */
const SERVICE_SHUTDOWN_S = 10;

/** `kubectl kustomize`'s answer for each overlay, run once (the manifests do not change during the run) */
const renders = new Map<string, ReturnType<typeof run>>();

/** The overlay's rendered documents, parsed anew for each caller. */
async function render(overlay: string): Promise<Doc[]> {
  let pending = renders.get(overlay);
  if (!pending) {
    pending = run('kubectl', ['kustomize', path.join(REPO_ROOT, 'k8s/overlays', overlay)]);
    renders.set(overlay, pending);
  }
  const r = await pending;
  if (r.code !== 0) throw new Error(`kubectl kustomize ${overlay} failed: ${r.stderr}`);
  return yamlDocs(r.stdout);
}
const byKind = (docs: Doc[], kind: string) => docs.filter((d) => d.kind === kind);
const named = (docs: Doc[], kind: string, name: string) => docs.find((d) => d.kind === kind && d.metadata.name === name);

t.before(() => requireTool('kubectl'));

for (const overlay of ['dev', 'prod']) {
  t.test(`${overlay}: every Hatch Deployment is probed, bounded, hardened and configured`, async (t) => {
    const docs = await render(overlay);
    const secretVolumes = new Set<string>();
    for (const name of HATCH) {
      const d = named(docs, 'Deployment', name);
      if (!d) {
        t.fail(`Deployment ${name} missing`);
        continue;
      }
      const pod = d.spec.template.spec;
      const [c] = pod.containers as Doc[];
      t.equal(c?.readinessProbe?.httpGet?.path, '/readyz', `${name} readiness /readyz`);
      t.equal(c?.livenessProbe?.httpGet?.path, '/healthz', `${name} liveness /healthz`);
      t.ok(c?.resources?.requests?.cpu && c?.resources?.requests?.memory, `${name} requests`);
      t.ok(c?.resources?.limits?.cpu && c?.resources?.limits?.memory, `${name} limits`);
      t.equal(pod.securityContext?.runAsNonRoot, true, `${name} runs as non-root`);
      t.equal(c?.securityContext?.readOnlyRootFilesystem, true, `${name} read-only root`);
      t.equal(c?.securityContext?.allowPrivilegeEscalation, false, `${name} no privilege escalation`);
      t.ok(pod.terminationGracePeriodSeconds > SERVICE_SHUTDOWN_S, `${name} grace period above the service's shutdown bound`);
      t.match(c?.envFrom?.[0]?.configMapRef?.name ?? '', /^hatch-config/, `${name} config from the ConfigMap`);
      const mig = (pod.initContainers ?? []).find((i: Doc) => i.name === 'migrate');
      t.match(mig?.command?.join(' ') ?? '', /migrate-cli/, `${name} migrates before it starts`);
      for (const v of pod.volumes ?? []) if (v.secret) secretVolumes.add(v.secret.secretName);
      for (const e of c?.env ?? []) {
        if (/TOKEN|PASSWORD|API_KEY/.test(e.name))
          t.ok(e.name.endsWith('_FILE') || e.valueFrom?.secretKeyRef, `${name}: ${e.name} from a Secret`);
        t.notOk(
          /TOKEN|PASSWORD|API_KEY/.test(e.name) && e.value && !e.name.endsWith('_FILE'),
          `${name}: ${e.name} is not a literal secret`,
        );
      }
    }
    t.ok(
      [...secretVolumes].some((s) => /^hatch-secrets(-[a-z0-9]+)?$/.test(s)),
      'secrets mounted from the hatch-secrets Secret',
    );
    t.equal(named(docs, 'Deployment', 'realtime-bridge')?.spec.replicas, 2, 'bridge: active + standby');
    const hpas = byKind(docs, 'HorizontalPodAutoscaler')
      .map((h) => h.spec.scaleTargetRef.name)
      .sort();
    t.same(hpas, ['email-sender', 'gateway', 'sms-sender'], 'HPAs for the gateway and workers, none for the bridge');
    const pdbs = byKind(docs, 'PodDisruptionBudget')
      .map((p) => p.spec.selector.matchLabels['app.kubernetes.io/name'])
      .sort();
    t.same(pdbs, [...HATCH].sort(), 'a PodDisruptionBudget per service');
  });

  t.test(`${overlay}: the gateway is reachable through an SSE-friendly Ingress`, async (t) => {
    const docs = await render(overlay);
    const svc = named(docs, 'Service', 'gateway');
    t.ok(svc, 'gateway Service');
    const ing = named(docs, 'Ingress', 'gateway');
    const a = ing?.metadata.annotations ?? {};
    t.equal(a['nginx.ingress.kubernetes.io/proxy-buffering'], 'off', 'no response buffering');
    t.ok(Number(a['nginx.ingress.kubernetes.io/proxy-read-timeout']) >= 3600, 'long read timeout');
    t.equal(ing?.spec.rules[0].http.paths[0].backend.service.name, 'gateway');
  });

  t.test(`${overlay}: /metrics is not reachable through the Ingress (scraped on the pod)`, async (t) => {
    const docs = await render(overlay);
    const ingresses = byKind(docs, 'Ingress');
    const denied = (ing: Doc) => {
      const ranges = String(ing.metadata.annotations?.['nginx.ingress.kubernetes.io/denylist-source-range'] ?? '')
        .split(',')
        .map((r) => r.trim());
      return ranges.includes('0.0.0.0/0') && ranges.includes('::/0');
    };
    const routes = ingresses.flatMap((ing) =>
      (ing.spec.rules as Doc[]).flatMap((r) =>
        ((r.http?.paths ?? []) as Doc[]).map((p) => ({ ing, host: r.host as string, path: p.path as string, type: p.pathType as string })),
      ),
    );
    // Every host that routes to the gateway: /metrics there is matched by a more specific, denied path.
    const hosts = [...new Set(routes.filter((r) => r.path === '/').map((r) => r.host))];
    t.ok(hosts.length > 0, 'the gateway is routed on some host');
    for (const host of hosts) {
      const guard = routes.find((r) => r.host === host && r.path === '/metrics' && r.type === 'Prefix');
      t.ok(guard, `${host}: a /metrics Prefix path of its own`);
      t.ok(guard && denied(guard.ing), `${host}: /metrics denied to every IPv4 and IPv6 address (${guard?.ing.metadata.name})`);
      t.notOk(
        guard?.ing.spec.rules.some((r: Doc) => (r.http?.paths ?? []).some((p: Doc) => p.path !== '/metrics')),
        'the denying Ingress routes nothing else (its annotation applies to all its paths)',
      );
    }
    // And no path that is not denied names /metrics (or anything under it) explicitly.
    for (const r of routes.filter((x) => !denied(x.ing)))
      t.notMatch(r.path, /^\/metrics(\/|$)/, `${r.ing.metadata.name} ${r.host}${r.path} does not route /metrics`);
  });
}

t.test('dev runs the emulator and its own infrastructure; prod runs neither and ships no secret values', async (t) => {
  const dev = await render('dev');
  const prod = await render('prod');
  t.ok(named(dev, 'Deployment', 'provider-emulator'), 'dev: provider emulator');
  t.ok(named(dev, 'Deployment', 'postgres') && named(dev, 'Deployment', 'nats'), 'dev: single-node PostgreSQL and NATS');
  t.notOk(named(prod, 'Deployment', 'provider-emulator'), 'prod: no emulator');
  t.notOk(byKind(prod, 'Secret').length, 'prod: no Secret with values in the manifests');
  t.notMatch(
    JSON.stringify(byKind(prod, 'ConfigMap')),
    /SENDGRID_WEBHOOK_ALLOW_UNSIGNED/,
    'prod: SendGrid events are never accepted unsigned',
  );
  const cluster = prod.find((d) => d.kind === 'Cluster' && d.apiVersion.startsWith('postgresql.cnpg.io/'));
  t.ok(cluster && cluster.spec.instances >= 3, 'prod: CloudNativePG cluster with 3 instances');
  for (const d of byKind(prod, 'Deployment')) {
    for (const c of d.spec.template.spec.containers) t.match(c.image, /:\d+\.\d+\.\d+$/, `prod: ${c.name} image pinned to a version`);
  }
});

t.test(
  'prod runs every stream and durable consumer replicated 3 ways on a NATS cluster every client knows all of; dev one NATS, one copy',
  async (t) => {
    const config = (docs: Doc[]) => byKind(docs, 'ConfigMap').find((m) => m.metadata.name.startsWith('hatch-config'))?.data ?? {};
    const prod = config(await render('prod'));
    t.equal(prod.HATCH_STREAM_REPLICAS, '3', 'prod: HATCH_STREAM_REPLICAS=3');
    const servers = String(prod.NATS_URL).split(',');
    t.equal(servers.length, 3, `prod: NATS_URL lists three servers (${prod.NATS_URL})`);
    t.equal(new Set(servers).size, 3, 'three different servers');
    for (const s of servers) t.match(s, /^nats:\/\/nats-[0-2]\.nats-headless:4222$/, `${s}: a pod of the Helm chart's StatefulSet`);
    const dev = config(await render('dev'));
    t.notOk(dev.HATCH_STREAM_REPLICAS && dev.HATCH_STREAM_REPLICAS !== '1', 'dev: one copy (its single NATS could not hold three)');
    t.equal(dev.NATS_URL, 'nats://nats:4222', 'dev: its one NATS');
  },
);

t.test("the accounts settings (issue 18) are in the ConfigMap, at the gateway's defaults, in every overlay", async (t) => {
  for (const overlay of ['dev', 'prod']) {
    const data = byKind(await render(overlay), 'ConfigMap').find((m) => m.metadata.name.startsWith('hatch-config'))?.data ?? {};
    for (const { key, value } of ACCOUNTS_SETTINGS) t.equal(data[key], value, `${overlay}: ${key}`);
  }
});
