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
 * does; every Prisma call passes through `db.prisma` first, where the request
 * meets its SqlScope. A request counts once its response has finished (cached
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

export function captureRequestSql(db: Database): SqlCapture {
  const currentRequest = new AsyncLocalStorage<IncomingMessage>();
  const scopeOf = new WeakMap<IncomingMessage, SqlScope>();
  let answered: (SqlScope | undefined)[] = [];
  let cutOff = 0;
  let inFlight = 0;
  subscribe('http.server.request.start', (message) => {
    const { request, response } = message as { request: IncomingMessage; response: ServerResponse };
    currentRequest.enterWith(request);
    inFlight += 1;
    response.once('close', () => {
      inFlight -= 1;
      if (response.writableFinished) answered.push(scopeOf.get(request));
      else cutOff += 1;
    });
  });
  const prisma = new Proxy(db.prisma, {
    get(target, prop) {
      const request = currentRequest.getStore();
      const scope = currentSqlScope();
      if (request && scope && !scopeOf.has(request)) scopeOf.set(request, scope);
      const value = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return {
    db: { ...db, prisma, ping: () => db.ping(), close: () => db.close() },
    reset: () => {
      answered = [];
      cutOff = 0;
    },
    read: () => {
      let statements = 0;
      let maxPerRequest = 0;
      for (const scope of answered) {
        statements += scope?.statements ?? 0;
        maxPerRequest = Math.max(maxPerRequest, scope?.statements ?? 0);
      }
      return { requests: answered.length, cutOff, inFlight, statements, maxPerRequest };
    },
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
  const currentRequest = new AsyncLocalStorage<IncomingMessage>();
  const statementsOf = new WeakMap<IncomingMessage, number>();
  let answered: number[] = [];
  let cutOff = 0;
  let inFlight = 0;
  subscribe('http.server.request.start', (message) => {
    const { request, response } = message as { request: IncomingMessage; response: ServerResponse };
    currentRequest.enterWith(request);
    inFlight += 1;
    response.once('close', () => {
      inFlight -= 1;
      if (response.writableFinished) answered.push(statementsOf.get(request) ?? 0);
      else cutOff += 1;
    });
  });
  return {
    charge: () => {
      const request = currentRequest.getStore();
      if (request) statementsOf.set(request, (statementsOf.get(request) ?? 0) + 1);
    },
    reset: () => {
      answered = [];
      cutOff = 0;
    },
    read: () => {
      let statements = 0;
      let maxPerRequest = 0;
      for (const n of answered) {
        statements += n;
        maxPerRequest = Math.max(maxPerRequest, n);
      }
      return { requests: answered.length, cutOff, inFlight, statements, maxPerRequest };
    },
  };
}
