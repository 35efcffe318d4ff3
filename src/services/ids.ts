import { randomBytes } from 'node:crypto';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return UUID.test(value);
}

// Random bytes drawn 4 KiB at a time, as node:crypto's randomUUID does: randomBytes(16) per id was
// a synchronous call into OpenSSL each time, 2 % of sendMessage's CPU (two ids per message).
const POOL_IDS = 256;
let pool = Buffer.alloc(0);
let offset = 0;

/** Time-ordered UUID (RFC 9562 v7), so new rows land at the right end of the primary-key index. */
export function uuidv7(now = Date.now()): string {
  if (offset >= pool.length) {
    pool = randomBytes(16 * POOL_IDS);
    offset = 0;
  }
  const bytes = pool.subarray(offset, offset + 16);
  offset += 16;
  bytes.writeUIntBE(now, 0, 6);
  bytes[6] = (bytes[6]! & 0x0f) | 0x70;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
