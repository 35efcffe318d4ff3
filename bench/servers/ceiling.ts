import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serveControl } from './control.js';

/**
 * Server (c): the ceiling of this machine for the same traffic — a bare
 * node:http server that reads each request body and answers with a fixed JSON
 * body as large as Parley's answers in that scenario. Nothing is parsed,
 * validated or fetched: no GraphQL server on this machine can beat it.
 */

let body = fixedBody(1024);

function fixedBody(bytes: number): Buffer {
  const prefix = '{"data":{"filler":"';
  const suffix = '"}}';
  return Buffer.from(prefix + 'x'.repeat(Math.max(0, Math.round(bytes) - prefix.length - suffix.length)) + suffix);
}

const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': body.length });
    res.end(body);
  });
});
server.keepAliveTimeout = 30_000;

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  serveControl(
    { port, description: 'bare node:http, fixed body' },
    { body: (bytes) => void (body = fixedBody(bytes)) },
    () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
});
