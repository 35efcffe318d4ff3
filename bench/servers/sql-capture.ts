import { AsyncLocalStorage } from 'node:async_hooks';
import { subscribe } from 'node:diagnostics_channel';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Database } from '../../src/infra/db.js';
import { currentSqlScope, type SqlScope } from '../../src/infra/sql-stats.js';

/**
 * SQL statements per request, counted by Parley's own counter: the driver
 * adapter wrapper of src/infra/sql-stats.ts adds every statement that reaches
 * the database to the SqlScope of the request that caused it. Both Parley's
 * server and the "before" server run each HTTP request in its own scope.
 *
 * This module ties scopes to HTTP requests from outside the server: Node's
 * `http.server.request.start` diagnostics channel is published synchronously
 * just before the server's request handler runs, so entering an
 * AsyncLocalStorage there makes the request visible to everything the handler
 * does; every Prisma call passes through `db.prisma` first, and every statement
 * sent without Prisma through `db.queryRows`, where the request meets its SqlScope. A request counts once its response has finished (cached
 * ones that sent no SQL count as 0); requests the load generator cut off at
 * the end of a run are left out, since they never ran to completion.
 */

export interface SqlCounts {
  /** Requests answered since the last reset. */
  requests: number;
  /** Requests whose client went away before the answer (the end of a run). */
  cutOff: number;
  /** Requests received and not yet closed. */
  inFlight: number;
  statements: number;
  /** The most statements one request sent. */
  maxPerRequest: number;
}

export interface SqlCapture {
  /** The same database, whose `prisma` ties each caller's SqlScope to its request. */
  db: Database;
  /** Starts a new run (call it when no request is in flight). */
  reset(): void;
  read(): SqlCounts;
}

/**
 * Ties each HTTP request to what its handler does (see the header) through a
 * small record of its own, and keeps, for every request answered since the
 * last reset, the count `countOf` gives that record when read (statements a
 * request causes after its response, such as a streamed reply's, still
 * count); requests cut off by the end of a run are counted apart. Only the
 * records are kept, never the requests: holding every IncomingMessage of a run
 * (its socket, parser and buffers) grew a long run's heap by ~100 MB a minute
 * and weighed on the measured server's GC.
 */
function answeredRequests<R>(create: () => R, countOf: (record: R) => number) {
  const currentRequest = new AsyncLocalStorage<R>();
  let answered: R[] = [];
  let cutOff = 0;
  let inFlight = 0;
  subscribe('http.server.request.start', (message) => {
    const { response } = message as { request: IncomingMessage; response: ServerResponse };
    const record = create();
    currentRequest.enterWith(record);
    inFlight += 1;
    response.once('close', () => {
      inFlight -= 1;
      if (response.writableFinished) answered.push(record);
      else cutOff += 1;
    });
  });
  return {
    current: () => currentRequest.getStore(),
    reset: () => {
      answered = [];
      cutOff = 0;
    },
    read: (): SqlCounts => {
      let statements = 0;
      let maxPerRequest = 0;
      for (const record of answered) {
        const n = countOf(record);
        statements += n;
        if (n > maxPerRequest) maxPerRequest = n;
      }
      return { requests: answered.length, cutOff, inFlight, statements, maxPerRequest };
    },
  };
}

export function captureRequestSql(db: Database): SqlCapture {
  const requests = answeredRequests<{ scope?: SqlScope }>(
    () => ({}),
    (record) => record.scope?.statements ?? 0,
  );
  const tie = () => {
    const record = requests.current();
    const scope = currentSqlScope();
    if (record && scope && !record.scope) record.scope = scope;
  };
  const prisma = new Proxy(db.prisma, {
    get(target, prop) {
      tie();
      const value = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  // Statements sent without Prisma's client (planned reads) meet their request here.
  const queryRows: Database['queryRows'] = (sql, args) => {
    tie();
    return db.queryRows(sql, args);
  };
  return {
    db: { ...db, prisma, queryRows, ping: () => db.ping(), close: () => db.close() },
    reset: requests.reset,
    read: requests.read,
  };
}

/**
 * The same count for a server that does not go through Parley's Prisma client
 * (PostGraphile, on its own `pg` pool): `charge()` is called by the pool's
 * clients for every statement they send, and adds it to the HTTP request
 * whose async context sent it (an `await` resumes in its caller's context, so
 * a client taken from the pool still charges the request that awaits it).
 */
export function countRequestStatements(): { charge(): void; reset(): void; read(): SqlCounts } {
  const requests = answeredRequests<{ statements: number }>(
    () => ({ statements: 0 }),
    (record) => record.statements,
  );
  return {
    charge: () => {
      const record = requests.current();
      if (record) record.statements += 1;
    },
    reset: requests.reset,
    read: requests.read,
  };
}
