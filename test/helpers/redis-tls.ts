import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { RedisTlsFiles } from './servers.js';

const run = promisify(execFile);

export function findOpenssl(): string | null {
  for (const candidate of ['/usr/bin/openssl', '/usr/local/bin/openssl']) if (existsSync(candidate)) return candidate;
  return null;
}

/** PEM files of a throwaway CA and a server certificate it signed, for 127.0.0.1 and localhost. */
export interface TestCertificates extends RedisTlsFiles {
  dir: string;
  /** Another CA, which signed nothing here: what a client trusting the wrong CA holds. */
  otherCaFile: string;
  dispose(): void;
}

// The extensions spelled out rather than taken from the system's openssl.cnf: a CA without
// CA:TRUE, or a server certificate without the loopback IP, is refused by Node for a reason
// other than the one a test means to show.
const OPENSSL_CONFIG = `
[req]
distinguished_name = dn
prompt = no
[dn]
CN = Parley test
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
# clientAuth too: cluster nodes present this certificate to each other on the cluster bus.
extendedKeyUsage = serverAuth,clientAuth
# IP:127.0.0.1 because ioredis' Cluster connects to the addresses CLUSTER SLOTS reports, and Node checks them.
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`;

/**
 * A CA and a server certificate generated with the openssl CLI into a temporary
 * directory (EC P-256 keys: quick to make, valid for a day). `dispose` removes
 * the directory.
 */
export async function createTestCertificates(): Promise<TestCertificates> {
  const openssl = findOpenssl();
  if (!openssl) throw new Error('openssl not found');
  const dir = mkdtempSync(join(tmpdir(), 'parley-tls-'));
  const file = (name: string) => join(dir, name);
  const dispose = () => rmSync(dir, { recursive: true, force: true });
  const ssl = (...args: string[]) => run(openssl, args, { cwd: dir, timeout: 10_000 });
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const newCa = (name: string, subject: string) =>
    ssl(
      'req',
      '-x509',
      '-config',
      file('openssl.cnf'),
      '-extensions',
      'ca',
      ...newKey,
      '-keyout',
      file(`${name}.key`),
      '-out',
      file(`${name}.crt`),
      '-days',
      '1',
      '-subj',
      subject,
    );
  try {
    writeFileSync(file('openssl.cnf'), OPENSSL_CONFIG);
    await Promise.all([
      newCa('ca', '/CN=Parley test CA'),
      newCa('other-ca', '/CN=Parley test CA, not the server'),
      ssl(
        'req',
        '-new',
        '-config',
        file('openssl.cnf'),
        ...newKey,
        '-keyout',
        file('server.key'),
        '-out',
        file('server.csr'),
        '-subj',
        '/CN=localhost',
      ),
    ]);
    await ssl(
      'x509',
      '-req',
      '-in',
      file('server.csr'),
      '-CA',
      file('ca.crt'),
      '-CAkey',
      file('ca.key'),
      '-CAcreateserial',
      '-days',
      '1',
      '-extfile',
      file('openssl.cnf'),
      '-extensions',
      'server',
      '-out',
      file('server.crt'),
    );
  } catch (error) {
    dispose();
    throw error;
  }
  return { dir, caFile: file('ca.crt'), certFile: file('server.crt'), keyFile: file('server.key'), otherCaFile: file('other-ca.crt'), dispose };
}

/** redis-cli arguments to reach a server started with these files (servers.ts' `redisTlsArgs`). */
export function tlsCliArgs(tls: RedisTlsFiles): string[] {
  return ['--tls', '--cacert', tls.caFile];
}
