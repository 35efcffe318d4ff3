import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ADMIN_TOKEN_PREFIX } from './auth.js';

/**
 * The admin token when PARLEY_ADMIN_TOKEN is not set: generated on first start
 * and kept (mode 0600) in the data dir, so restarts keep working with it.
 */
export function loadOrCreateAdminToken(dataDir: string): { token: string; created: boolean } {
  const file = join(dataDir, 'admin-token');
  if (existsSync(file)) {
    const token = readFileSync(file, 'utf8').trim();
    if (token.length >= 24) return { token, created: false };
  }
  mkdirSync(dataDir, { recursive: true });
  const token = ADMIN_TOKEN_PREFIX + randomBytes(24).toString('base64url');
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return { token, created: true };
}
