import type { Config } from './config.js';
import type { Database, PrismaClient } from './infra/db.js';
import type { Logger } from './infra/log.js';
import { createLoaders, type Loaders } from './loaders/index.js';
import type { Principal } from './services/auth.js';

/** Long-lived dependencies shared by every request of one app. */
export interface AppDeps {
  config: Config;
  db: Database;
  log: Logger;
  adminToken: string;
}

export interface Context extends Principal {
  deps: AppDeps;
  prisma: PrismaClient;
  loaders: Loaders;
}

/** Fresh loaders per request (and, for subscriptions, per event). */
export function createContext(deps: AppDeps, principal: Principal): Context {
  return { ...principal, deps, prisma: deps.db.prisma, loaders: createLoaders(deps.db.prisma) };
}
