import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { openDatabase } from '../src/infra/db.js';
import { startFakeLlm } from '../test/helpers/fake-llm.js';
import { HAVE_CHROMIUM, CHROMIUM, RECORD_WIDGET, firstPieceMs, frames, launchChromium, startParley } from '../test/helpers/widget-browser.js';
import { buildWidget } from '../widget/build.js';

/**
 * npm run bench:widget [-- --replies 20 --piece-ms 100]
 *
 * The widget's latency budget (issue 16 point 5): a reply's first piece on
 * screen within 150 ms of the provider's first token, on loopback. Parley in
 * development with the openai engine pointed at the fake OpenAI-compatible
 * server of the tests; Debian's Chromium on /demo asks N different questions
 * (no answer-cache hits) through the widget. For each reply: the time from the
 * provider writing its first piece to the next frame painted after that piece
 * reached the widget's DOM (both clocks are performance.timeOrigin + now()).
 * Prints p50/p95/max and the bundle sizes, writes JSON to bench/results/, and
 * exits 1 when p95 is over the budget.
 */

const { values: flags } = parseArgs({
  options: {
    replies: { type: 'string', default: '20' },
    'piece-ms': { type: 'string', default: '100' },
    help: { type: 'boolean', default: false },
  },
});
if (flags.help) {
  process.stdout.write('npm run bench:widget -- [--replies N] [--piece-ms MS]\n');
  process.exit(0);
}
if (!HAVE_CHROMIUM) {
  process.stderr.write(`bench:widget needs Chromium at ${CHROMIUM} (apt-get install chromium, or PARLEY_CHROMIUM)\n`);
  process.exit(2);
}

const BUDGET_MS = 150;
const REPLIES = Number(flags.replies);
const PIECE_MS = Number(flags['piece-ms']);
const RESULTS = fileURLToPath(new URL('./results/', import.meta.url));

const dataDir = mkdtempSync(join(tmpdir(), 'parley-bench-widget-'));
const [fake, db, widget] = await Promise.all([startFakeLlm(), openDatabase({ dataDir: 'memory://' }), buildWidget()]);
const server = await startParley({ db, dataDir, fake });
const browser = await launchChromium();
const samples: { dom: number; painted: number }[] = [];
try {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  await context.addInitScript(RECORD_WIDGET);
  const page = await context.newPage();
  await page.goto(`${server.base}/demo`);
  await page.locator('parley-chat .launcher').click();
  const input = page.locator('parley-chat textarea');
  await input.waitFor();
  for (let i = 1; i <= REPLIES; i++) {
    const chunks = [`Reply ${i} begins, `, 'goes on, ', 'and ends.'];
    fake.script({ kind: 'answer', chunks, delayMs: PIECE_MS });
    const request = fake.requests.length;
    const since = (await frames(page)).length;
    await input.fill(`Question number ${i}: how long does shipping take?`);
    await input.press('Enter');
    const done = Date.now() + 15_000;
    while (!(await page.locator('parley-chat li.assistant .text').allInnerTexts()).includes(chunks.join(''))) {
      if (Date.now() > done) throw new Error(`reply ${i} did not arrive`);
      await page.waitForTimeout(20);
    }
    await page.waitForTimeout(50); // the last frame's paint time
    samples.push(firstPieceMs((await frames(page)).slice(since), fake, request, chunks[0]!));
  }
} finally {
  await browser.close();
  await server.app.stop();
  await fake.dispose();
  await db.close();
  rmSync(dataDir, { recursive: true, force: true });
}

const quantile = (values: number[], q: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.ceil(q * values.length) - 1)]!;
const painted = samples.map((s) => s.painted);
const dom = samples.map((s) => s.dom);
const summary = {
  replies: samples.length,
  pieceMs: PIECE_MS,
  firstPieceMs: {
    painted: { p50: quantile(painted, 0.5), p95: quantile(painted, 0.95), max: Math.max(...painted) },
    dom: { p50: quantile(dom, 0.5), p95: quantile(dom, 0.95), max: Math.max(...dom) },
  },
  budgetMs: BUDGET_MS,
  bundle: widget.sizes,
  machine: { cpus: cpus().length, loadavg: loadavg() },
};
const ms = (value: number) => `${value.toFixed(1)} ms`;
console.log(
  [
    `widget: provider's first token -> first piece on screen, ${samples.length} replies on loopback`,
    `  painted  p50 ${ms(summary.firstPieceMs.painted.p50)}  p95 ${ms(summary.firstPieceMs.painted.p95)}  max ${ms(summary.firstPieceMs.painted.max)}   (budget p95 <= ${BUDGET_MS} ms)`,
    `  in DOM   p50 ${ms(summary.firstPieceMs.dom.p50)}  p95 ${ms(summary.firstPieceMs.dom.p95)}  max ${ms(summary.firstPieceMs.dom.max)}`,
    `  bundle   launcher ${widget.sizes.launcherGz} B gz, launcher + panel ${widget.sizes.totalGz} B gz`,
  ].join('\n'),
);
mkdirSync(RESULTS, { recursive: true });
const file = join(RESULTS, `widget-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, `${JSON.stringify(summary, null, 2)}\n`);
console.log(`  written to ${file}`);
if (summary.firstPieceMs.painted.p95 > BUDGET_MS) {
  console.error(`over budget: p95 ${ms(summary.firstPieceMs.painted.p95)} > ${BUDGET_MS} ms`);
  process.exit(1);
}
