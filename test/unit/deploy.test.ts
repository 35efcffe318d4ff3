import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CONFIG_VARIABLES, loadConfig } from '../../src/config.js';

/**
 * The deployment files cannot be run here (no container engine), so what can
 * rot in them is checked: every variable docker-compose.yml sets for Parley is
 * one src/config.ts reads and accepts, the replicas sit behind a balancer that
 * passes WebSocket upgrades and forwards the client address the way
 * PARLEY_TRUST_PROXY expects, and the Dockerfile builds and starts Parley.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const read = (path: string) => readFileSync(`${ROOT}/${path}`, 'utf8');

interface Service {
  build?: unknown;
  image?: string;
  environment?: Record<string, string | number | boolean> | string[];
  ports?: string[];
  volumes?: string[];
  depends_on?: unknown;
}

const compose = parse(read('docker-compose.yml')) as { services: Record<string, Service> };
const parleys = Object.entries(compose.services).filter(([, s]) => s.build !== undefined);

function environment(service: Service): Record<string, string> {
  const env = service.environment ?? {};
  if (Array.isArray(env)) return Object.fromEntries(env.map((line) => line.split(/=(.*)/s, 2) as [string, string]));
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)]));
}

describe('docker-compose.yml', () => {
  it('runs PostgreSQL, Redis, two Parley replicas and a load balancer', () => {
    expect(parleys.map(([name]) => name).sort()).toEqual(['parley-1', 'parley-2']);
    const images = Object.values(compose.services).map((s) => s.image ?? '');
    expect(images.some((i) => i.startsWith('postgres:'))).toBe(true);
    expect(images.some((i) => i.startsWith('redis:'))).toBe(true);
    expect(compose.services.lb?.image).toMatch(/^nginx:/);
    expect(compose.services.lb?.volumes).toContain('./deploy/nginx.conf:/etc/nginx/nginx.conf:ro');
  });

  it('sets only variables that src/config.ts knows, with values it accepts', () => {
    for (const [name, service] of parleys) {
      const env = environment(service);
      expect(Object.keys(env).length, name).toBeGreaterThan(0);
      for (const variable of Object.keys(env)) expect(CONFIG_VARIABLES, `${name}: ${variable}`).toContain(variable);
      // Interpolated values (the admin token) get a valid stand-in; everything else is checked as written.
      const values = Object.fromEntries(
        Object.entries(env).map(([k, v]) => [k, v.startsWith('${') ? 'adm_compose_check_0123456789abcdef' : v]),
      );
      const config = loadConfig(values);
      expect(config.env).toBe('production');
      expect(config.database.url).toMatch(/@postgres:5432\//);
      expect(config.redis.url).toBe('redis://redis:6379');
      expect(config.http.trustProxy).toBe(1);
    }
  });

  it('shares one admin token between replicas and requires it to be set', () => {
    const tokens = parleys.map(([, s]) => environment(s).PARLEY_ADMIN_TOKEN);
    expect(new Set(tokens).size).toBe(1);
    expect(tokens[0]).toMatch(/^\$\{PARLEY_ADMIN_TOKEN:\?/);
  });

  it('knows every variable src/config.ts reads (the list is the schema’s)', () => {
    for (const documented of read('.env.example').matchAll(/^([A-Z][A-Z0-9_]+)=/gm)) expect(CONFIG_VARIABLES).toContain(documented[1]);
    for (const variable of CONFIG_VARIABLES) expect(read('.env.example'), variable).toContain(`${variable}=`);
  });
});

describe('deploy/nginx.conf', () => {
  const nginx = read('deploy/nginx.conf');
  const compose = parse(read('docker-compose.yml')) as { services: Record<string, Service> };

  it('balances over every Parley replica on its port', () => {
    const port = environment(compose.services['parley-1']!).PORT;
    for (const [name] of parleys) expect(nginx).toMatch(new RegExp(`server ${name}:${port}\\b`));
  });

  it('passes WebSocket upgrades and streams, and forwards the client address', () => {
    expect(nginx).toMatch(/proxy_http_version 1\.1;/);
    expect(nginx).toMatch(/proxy_set_header Upgrade \$http_upgrade;/);
    expect(nginx).toMatch(/proxy_set_header Connection \$connection_upgrade;/);
    expect(nginx).toMatch(/map \$http_upgrade \$connection_upgrade/);
    expect(nginx).toMatch(/proxy_buffering off;/);
    // One proxy appending the address it saw: what PARLEY_TRUST_PROXY=1 reads.
    expect(nginx).toMatch(/proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;/);
  });
});

describe('Dockerfile', () => {
  const dockerfile = read('Dockerfile');

  it('builds on Node 20 with npm ci and starts with npm start', () => {
    expect(dockerfile).toMatch(/^FROM node:20[\w.-]*$/m);
    expect(dockerfile).toMatch(/^RUN npm ci\b/m);
    expect(dockerfile).toMatch(/^CMD \["npm", "start"\]$/m);
    expect(dockerfile).toMatch(/^EXPOSE 4000$/m);
    expect(dockerfile).toMatch(/HOST=0\.0\.0\.0/);
    // Everything `npm ci` (prisma generate) and `npm start` (tsx src/main.ts) need is copied.
    for (const path of ['package.json', 'package-lock.json', 'prisma', 'prisma.config.ts', 'src']) expect(dockerfile).toContain(path);
  });
});
