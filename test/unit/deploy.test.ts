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
      const values = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v.startsWith('${') ? 'adm_compose_check_0123456789abcdef' : v]));
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

  const stages = dockerfile.split(/^(?=FROM )/m).slice(1);
  const [build, runtime] = stages as [string, string];
  const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string>; engines: { node: string } };

  it('builds in one stage and runs on the current Node LTS in another, without the build tools', () => {
    expect(stages).toHaveLength(2);
    expect(dockerfile).toMatch(/^ARG NODE_IMAGE=node:24-[\w.-]+$/m);
    expect(build).toMatch(/^FROM \$\{NODE_IMAGE\} AS build$/m);
    expect(runtime).toMatch(/^FROM \$\{NODE_IMAGE\} AS runtime$/m);
    // Build: every dependency (prisma generate runs in npm ci), then the compile.
    expect(build).toMatch(/^RUN npm ci$/m);
    expect(build).toMatch(/^RUN npm run build$/m);
    for (const path of ['package.json', 'package-lock.json', 'prisma', 'prisma.config.ts', 'tsconfig.build.json', 'src', 'widget'])
      expect(build).toContain(path);
    // Runtime: production dependencies, the compiled code and the migrations; no sources, no dev tools.
    expect(runtime).toMatch(/^RUN npm ci --omit=dev --ignore-scripts\b/m);
    expect(runtime).toMatch(/^COPY --from=build \/app\/dist \.\/dist$/m);
    expect(runtime).toMatch(/^COPY prisma\/migrations \.\/prisma\/migrations$/m);
    expect(runtime).not.toMatch(/^COPY src\b/m);
    expect(runtime).toMatch(/^USER node$/m);
    expect(runtime).toMatch(/^EXPOSE 4000$/m);
    expect(runtime).toMatch(/HOST=0\.0\.0\.0/);
  });

  it('runs node itself under tini as PID 1, the command package.json names', () => {
    expect(runtime).toMatch(/apt-get install -y --no-install-recommends tini/);
    expect(runtime).toMatch(/^ENTRYPOINT \["\/usr\/bin\/tini", "--"\]$/m);
    expect(runtime).toMatch(/^CMD \["node", "dist\/main\.js"\]$/m);
    expect(pkg.scripts['start:built']).toBe('node dist/main.js');
    // The chat widget is built into dist/widget with the server: the runtime stage's COPY of dist/ carries it.
    expect(pkg.scripts.build).toBe('tsc -p tsconfig.build.json && npm run build:widget');
    expect(pkg.scripts['build:widget']).toBe('tsx widget/build.ts dist/widget');
    // npm start: one node process (tsx as a loader), not sh -> npm -> tsx's CLI -> node.
    expect(pkg.scripts.start).toBe('node --import tsx src/main.ts');
  });

  it('names the Node versions it runs on: the LTS of the image, and the 20.19 of development and CI', () => {
    expect(read('.nvmrc').trim()).toBe('24');
    expect(pkg.engines.node).toBe('>=20.19');
  });
});
