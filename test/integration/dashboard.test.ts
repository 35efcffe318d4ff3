import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { databaseVariants } from '../helpers/db.js';
import { seedConversations } from '../helpers/fixtures.js';

/**
 * The Grafana dashboard in deploy/ cannot be rendered here, so what can rot in
 * it is checked: every metric its queries name is one Parley's /metrics
 * serves (histogram suffixes only on histograms), and the provisioning and
 * Prometheus files point where docker-compose.yml mounts and runs things.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const read = (path: string) => readFileSync(`${ROOT}/${path}`, 'utf8');

interface Panel {
  title: string;
  datasource: { uid: string };
  targets: { expr: string; datasource: { uid: string } }[];
}
const dashboard = JSON.parse(read('deploy/grafana/dashboards/parley.json')) as { uid: string; panels: Panel[] };
const compose = parse(read('docker-compose.yml')) as { services: Record<string, { build?: unknown; volumes?: string[]; image?: string }> };

describe('the Grafana dashboard', () => {
  let t: TestApp;
  let served: Map<string, string>;

  beforeAll(async () => {
    t = await createTestApp(databaseVariants().find((v) => v.name === 'pglite')!);
    const product = await t.product('Dashboard');
    await seedConversations(t.prisma, product.id, { conversations: 1, messages: 2 });
    // A read and a write, so the operation series have samples as they would in production.
    await t.gql(`{ viewer { name conversations(first: 1) { edges { node { id } } } } }`, { key: product.key });
    const port = (await t.app.start(0, '127.0.0.1')).port;
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    served = new Map([...text.matchAll(/^# TYPE (\w+) (\w+)$/gm)].map((m) => [m[1]!, m[2]!]));
  });
  afterAll(() => t?.dispose());

  it('covers what an operator watches: latency, errors, SQL, caches, response cache, subscriptions, answers, pools', () => {
    const titles = dashboard.panels.map((p) => p.title.toLowerCase()).join(' | ');
    for (const topic of ['latency', 'errors', 'sql', 'cache hit rate', 'response cache', 'subscriptions', 'answers', 'circuit', 'pools']) {
      expect(titles).toContain(topic);
    }
  });

  it('queries only metrics that /metrics serves', () => {
    const named = new Set(
      dashboard.panels.flatMap((p) => p.targets.flatMap((target) => [...target.expr.matchAll(/\bparley_\w+/g)].map((m) => m[0]))),
    );
    expect(named.size).toBeGreaterThan(10);
    for (const name of named) {
      const base = name.replace(/_(bucket|sum|count)$/, '');
      if (served.has(name)) continue;
      expect(served.get(base), `${name} is not served by /metrics`).toBe('histogram');
    }
  });

  it('reads from the Prometheus that compose runs, which scrapes every Parley replica', () => {
    const datasource = parse(read('deploy/grafana/provisioning/datasources/prometheus.yml')) as { datasources: { uid: string; url: string }[] };
    const uid = datasource.datasources[0]!.uid;
    for (const panel of dashboard.panels) {
      expect(panel.datasource.uid).toBe(uid);
      for (const target of panel.targets) expect(target.datasource.uid).toBe(uid);
    }
    expect(datasource.datasources[0]!.url).toBe('http://prometheus:9090');
    expect(compose.services.prometheus?.image).toMatch(/^prom\/prometheus:/);
    expect(compose.services.grafana?.image).toMatch(/^grafana\/grafana:/);

    const prometheus = parse(read('deploy/prometheus.yml')) as {
      scrape_configs: { metrics_path: string; static_configs: { targets: string[] }[] }[];
    };
    const replicas = Object.entries(compose.services)
      .filter(([, s]) => s.build !== undefined)
      .map(([name]) => `${name}:4000`);
    expect(prometheus.scrape_configs[0]!.metrics_path).toBe('/metrics');
    expect(prometheus.scrape_configs[0]!.static_configs[0]!.targets.sort()).toEqual(replicas.sort());
    expect(compose.services.prometheus?.volumes).toContain('./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro');

    // Grafana loads the dashboards from the folder its provisioning names, which compose mounts.
    const provider = parse(read('deploy/grafana/provisioning/dashboards/parley.yml')) as { providers: { options: { path: string } }[] };
    expect(compose.services.grafana?.volumes).toContain(`./deploy/grafana/dashboards:${provider.providers[0]!.options.path}:ro`);
    expect(compose.services.grafana?.volumes).toContain('./deploy/grafana/provisioning:/etc/grafana/provisioning:ro');
  });
});
