import { createHash } from 'node:crypto';

/** sha256 of a string, as hex (stored key hashes, checksums) or base64url (shorter, for Redis keys and ETags). */
export function sha256(value: string, encoding: 'hex' | 'base64url' = 'hex'): string {
  return createHash('sha256').update(value).digest(encoding);
}
