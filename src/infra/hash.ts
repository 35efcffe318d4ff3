import { createHash } from 'node:crypto';

/** sha256 of a string, as hex (stored key hashes, checksums), base64url (shorter, for Redis keys and ETags) or bytes. */
export function sha256(value: string, encoding?: 'hex' | 'base64url'): string;
export function sha256(value: string, encoding: 'bytes'): Buffer;
export function sha256(value: string, encoding: 'hex' | 'base64url' | 'bytes' = 'hex'): string | Buffer {
  const hash = createHash('sha256').update(value);
  return encoding === 'bytes' ? hash.digest() : hash.digest(encoding);
}
