import { describe, expect, it } from 'vitest';
import { requestOrigin } from '../../src/http/request-origin.js';
import { normaliseOrigin } from '../../src/services/origins.js';

describe('normaliseOrigin', () => {
  it('is the origin as a browser writes it in its Origin header', () => {
    expect(normaliseOrigin(' HTTPS://Shop.Example:443/ ')).toBe('https://shop.example');
    expect(normaliseOrigin('http://shop.example:80')).toBe('http://shop.example');
    expect(normaliseOrigin('http://localhost:3000')).toBe('http://localhost:3000');
    expect(normaliseOrigin('https://bücher.example')).toBe('https://xn--bcher-kva.example');
    expect(normaliseOrigin('http://[::1]:8080')).toBe('http://[::1]:8080');
    expect(normaliseOrigin('http://192.0.2.1:8080')).toBe('http://192.0.2.1:8080');
  });

  it('refuses what is not one page origin', () => {
    for (const value of [
      'shop.example',
      'ftp://shop.example',
      'https://shop.example/a',
      'https://shop.example//',
      'https://*.shop.example',
      'https://a..example',
      'https://-a.example',
      'https://u:p@shop.example',
      'null',
      '*',
      '',
    ]) {
      expect(normaliseOrigin(value), value).toBeNull();
    }
  });
});

describe('requestOrigin', () => {
  const at = (origin: string | undefined, host: string, forwardedHost?: string, proxies = 0) =>
    requestOrigin({ origin, host, forwardedHost }, proxies);

  it('is null without an Origin header: a server, curl', () => {
    expect(at(undefined, 'api.example')).toBeNull();
  });

  it('is the same origin when the page’s host and port are the host the request was sent to, whatever the scheme', () => {
    expect(at('http://127.0.0.1:4000', '127.0.0.1:4000')).toEqual({ origin: 'http://127.0.0.1:4000', sameOrigin: true });
    // A proxy in front terminates TLS: the page is https, the node sees http.
    expect(at('https://api.example', 'API.example')?.sameOrigin).toBe(true);
    expect(at('http://127.0.0.1:4001', '127.0.0.1:4000')?.sameOrigin).toBe(false);
    expect(at('https://evil.example', 'api.example')?.sameOrigin).toBe(false);
    expect(at('null', 'api.example')).toEqual({ origin: 'null', sameOrigin: false });
  });

  it('counts X-Forwarded-Host only as written by a trusted proxy', () => {
    expect(at('https://api.example', 'parley:4000', 'api.example')?.sameOrigin).toBe(false);
    expect(at('https://api.example', 'parley:4000', 'api.example', 1)?.sameOrigin).toBe(true);
    // The client's own entry, left of what the one trusted proxy appended, is never trusted.
    expect(at('https://evil.example', 'parley:4000', 'evil.example, api.example', 1)?.sameOrigin).toBe(false);
  });
});
