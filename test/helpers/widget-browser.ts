import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { buildApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import type { Database } from '../../src/infra/db.js';
import type { FakeLlm } from './fake-llm.js';

/**
 * What the widget's browser test and its latency bench share: Parley in
 * development (the demo product, /demo) answering through the fake
 * OpenAI-compatible server, Debian's Chromium, and a recorder in the page.
 */

export const CHROMIUM = process.env.PARLEY_CHROMIUM ?? '/usr/bin/chromium';
export const HAVE_CHROMIUM = existsSync(CHROMIUM);
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

/** Parley as `npm start` runs it, on `db` (kept open across restarts) and `dataDir`, replies streamed by `fake`. */
export async function startParley(options: {
  db: Database;
  dataDir: string;
  fake: FakeLlm;
  port?: number;
}): Promise<{ app: App; base: string; port: number }> {
  const config = loadConfig({
    NODE_ENV: 'development',
    PARLEY_DATA_DIR: options.dataDir,
    PARLEY_DEMO: 'true',
    PARLEY_LOG_LEVEL: 'silent',
    PARLEY_METRICS: 'false',
    PARLEY_ANSWER_ENGINE: 'openai',
    PARLEY_LLM_BASE_URL: options.fake.url,
    PARLEY_LLM_API_KEY: 'sk-fake',
    PARLEY_LLM_FAST_MODEL: 'fast-model',
    PARLEY_LLM_LARGE_MODEL: 'large-model',
    PARLEY_LLM_TIMEOUT_MS: '10000',
  });
  const app = await buildApp(config, { db: options.db });
  const { port } = await app.start(options.port ?? 0, '127.0.0.1');
  return { app, base: `http://127.0.0.1:${port}`, port };
}

export interface WidgetFrame {
  /** When the DOM changed (performance.timeOrigin + now(): ms since the epoch, as the fake server's clock). */
  at: number;
  /** The next animation frame after it: when it was on screen. */
  painted?: number;
  typing: boolean;
  status: string;
  assistant: { text: string; draft: boolean }[];
}

/**
 * Added to every page: layout shifts (all of them, input or not) into
 * window.__shifts, and each change of the widget's panel into
 * window.__frames — the assistant's messages (drafts included) and whether the
 * typing line shows — with when it happened and when the next frame painted.
 */
export const RECORD_WIDGET = `(() => {
  const now = () => performance.timeOrigin + performance.now();
  window.__shifts = [];
  window.__frames = [];
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) window.__shifts.push({ value: entry.value, hadRecentInput: entry.hadRecentInput });
  }).observe({ type: 'layout-shift', buffered: true });
  const watch = () => {
    const root = document.querySelector('parley-chat')?.shadowRoot;
    if (!root) return setTimeout(watch, 20);
    new MutationObserver(() => {
      const typing = root.querySelector('.typing');
      const frame = {
        at: now(),
        typing: !!typing && !typing.hidden,
        status: root.querySelector('.status')?.textContent ?? '',
        assistant: [...root.querySelectorAll('li.assistant')].map((li) => ({ text: li.querySelector('.text').textContent, draft: li.classList.contains('draft') })),
      };
      window.__frames.push(frame);
      requestAnimationFrame(() => (frame.painted = now()));
    }).observe(root, { subtree: true, childList: true, characterData: true, attributes: true, attributeFilter: ['hidden', 'class'] });
  };
  watch();
})();`;

export function frames(page: Page): Promise<WidgetFrame[]> {
  return page.evaluate<WidgetFrame[]>('window.__frames');
}

/** Milliseconds from the provider writing a reply's first piece to that piece on screen (painted), from the page's record. */
export function firstPieceMs(recorded: WidgetFrame[], fake: FakeLlm, request: number, firstPiece: string): { dom: number; painted: number } {
  const sent = fake.sent.find((s) => s.request === request);
  if (!sent) throw new Error(`the provider sent nothing for request ${request}`);
  const shown = recorded.find((f) => f.at >= sent.at - 1 && f.assistant.some((a) => a.draft && a.text.startsWith(firstPiece)));
  if (!shown) throw new Error(`no frame shows the first piece ${JSON.stringify(firstPiece)}`);
  return { dom: shown.at - sent.at, painted: (shown.painted ?? shown.at) - sent.at };
}
