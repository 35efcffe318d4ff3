import { describe, expect, it } from 'vitest';
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
    for (const value of ['shop.example', 'ftp://shop.example', 'https://shop.example/a', 'https://shop.example//', 'https://*.shop.example', 'https://a..example', 'https://-a.example', 'https://u:p@shop.example', 'null', '*', '']) {
      expect(normaliseOrigin(value), value).toBeNull();
    }
  });
});
