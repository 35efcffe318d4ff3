import { describe, expect, it } from 'vitest';
import { isDatabaseUnavailable } from '../../src/infra/db.js';

/**
 * The shapes a database outage takes on its way to the resolver (the
 * integration test database-outage.test.ts produces the common ones for real;
 * these are the rest, as Prisma 7, @prisma/adapter-pg and pg build them).
 */

class PrismaClientKnownRequestError extends Error {
  override name = 'PrismaClientKnownRequestError';
  constructor(
    message: string,
    readonly code: string,
    readonly meta?: Record<string, unknown>,
  ) {
    super(message);
  }
}

const adapter = (cause: Record<string, unknown>) =>
  new PrismaClientKnownRequestError('Raw query failed.', 'P2010', { driverAdapterError: { name: 'DriverAdapterError', cause } });
const pgError = (code: string, message: string) => Object.assign(new Error(message), { code, severity: 'FATAL' });

describe('isDatabaseUnavailable', () => {
  it.each([
    ['server unreachable (raw statement)', adapter({ kind: 'DatabaseNotReachable', host: '127.0.0.1', port: 5432 })],
    ['connection closed (raw statement)', adapter({ kind: 'ConnectionClosed' })],
    ['socket timeout', adapter({ kind: 'SocketTimeout' })],
    ['too many connections', adapter({ kind: 'TooManyConnections', cause: 'sorry, too many clients already' })],
    ['admin shutdown 57P01 through the adapter', adapter({ originalCode: '57P01', kind: 'postgres', code: '57P01' })],
    ['starting up 57P03 through the adapter', adapter({ originalCode: '57P03', kind: 'postgres', code: '57P03' })],
    ['pg: terminating connection (57P01)', pgError('57P01', 'terminating connection due to administrator command')],
    ['pg: starting up (57P03)', pgError('57P03', 'the database system is starting up')],
    ['pg: connection failure (08006)', pgError('08006', 'connection failure')],
    ["Prisma: can't reach", new PrismaClientKnownRequestError("Can't reach database server at 127.0.0.1:5432", 'P1001')],
    ['Prisma: server closed the connection', new PrismaClientKnownRequestError('Server has closed the connection.', 'P1017')],
    [
      'Prisma: no pool connection in time',
      new PrismaClientKnownRequestError('Timed out fetching a new connection from the connection pool.', 'P2024'),
    ],
    [
      'Prisma: transaction not started in time',
      new PrismaClientKnownRequestError('Transaction API error: Unable to start a transaction in the given time.', 'P2028'),
    ],
    [
      'socket error inside a Prisma error',
      Object.assign(new PrismaClientKnownRequestError('x', 'P2010'), {
        cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED', syscall: 'connect', errno: -111 }),
      }),
    ],
  ])('%s', (_name, error) => {
    expect(isDatabaseUnavailable(error)).toBe(true);
  });

  it.each([
    ['unique violation', new PrismaClientKnownRequestError('Unique constraint failed', 'P2002')],
    ['record not found', new PrismaClientKnownRequestError('No record was found', 'P2025')],
    ['a statement timeout is a slow query, not an outage', adapter({ originalCode: '57014', kind: 'postgres', code: '57014' })],
    [
      "an LLM provider's ECONNREFUSED",
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:11434'), { code: 'ECONNREFUSED', syscall: 'connect', errno: -111 }),
    ],
    ['a programming error', new TypeError("Cannot read properties of undefined (reading 'id')")],
    ['not an error at all', 'boom'],
  ])('not: %s', (_name, error) => {
    expect(isDatabaseUnavailable(error)).toBe(false);
  });

  it('does not loop on a cause cycle', () => {
    const a: { cause?: unknown } = {};
    const b = { cause: a };
    a.cause = b;
    expect(isDatabaseUnavailable(a)).toBe(false);
  });
});
