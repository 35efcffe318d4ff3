import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../config.js';
import type { Logger } from '../infra/log.js';
import { demoPublishableKey, type DemoSeed } from '../services/seed.js';
import type { Store } from '../services/store.js';

/**
 * `/demo`, in development only (as GraphiQL): a shop page of the demo product
 * with the chat widget embedded the way a customer embeds it, so a newcomer
 * sees a whole exchange — the question, the assistant typing, the reply
 * streaming in, sources, ratings. The page carries the demo product's
 * publishable key (services/seed.ts says where it comes from).
 */

export const DEMO_PATH = '/demo';

export interface DemoPageOptions {
  config: Config;
  log: Logger;
  store: Store;
  demo: DemoSeed | null;
}

export function createDemoPage({ config, log, store, demo }: DemoPageOptions) {
  let key: Promise<string> | undefined;
  const publishableKey = (productId: string) =>
    (key ??= demoPublishableKey(store, config.dataDir, productId).catch((error: Error) => {
      key = undefined;
      throw error;
    }));

  return {
    serve(path: string, req: IncomingMessage, res: ServerResponse): boolean {
      if (path !== DEMO_PATH && path !== `${DEMO_PATH}/`) return false;
      const html = (status: number, text: string) => {
        res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
        res.end(req.method === 'HEAD' ? undefined : text);
      };
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return true;
      }
      if (!demo) {
        html(
          404,
          page(
            'No demo product',
            '<p>Parley seeds a demo product on an empty database in development (<code>PARLEY_DEMO</code>); this one has none, or its key is not in this data dir.</p>',
          ),
        );
        return true;
      }
      const host = escapeHtml(req.headers.host ?? `localhost:${config.port}`);
      void publishableKey(demo.productId).then(
        (key) => html(200, demoPage(key, host)),
        (error: Error) => {
          log.error('demo page: no publishable key for the demo product', { error });
          html(500, page('Demo unavailable', `<p>The demo product's publishable key could not be issued: ${escapeHtml(error.message)}</p>`));
        },
      );
      return true;
    },
  };
}

function demoPage(key: string, host: string): string {
  const attributes = `endpoint="http://${host}/graphql" publishable-key="${escapeHtml(key)}"`;
  const snippet = escapeHtml(`<script type="module" src="http://${host}/widget/parley-chat.js"></script>\n<parley-chat ${attributes}></parley-chat>`);
  return page(
    'Demo shop',
    `<header><strong>Demo shop</strong><span>Shoes · Bags · Help</span></header>
<main>
  <h1>Everyday sneakers</h1>
  <p class="price">€89</p>
  <p>Light, washable, made to walk all day. Orders ship within 2 business days, and you can return them within 30 days.</p>
  <section>
    <h2>Ask the shop assistant</h2>
    <p>The button in the bottom-right corner is Parley's chat widget, answering from the demo product's knowledge base.
    Try <q>How long does shipping take?</q>, <q>Can I return an item I bought?</q> or <q>When is support open?</q>
    Your conversation stays across reloads; <a href="/graphql">GraphiQL</a> reads it with the demo product's secret key.</p>
    <h2>Embed it in your page</h2>
    <pre><code>${snippet}</code></pre>
  </section>
</main>
<parley-chat endpoint="/graphql" publishable-key="${escapeHtml(key)}" chat-title="Demo shop assistant"></parley-chat>
<script type="module" src="/widget/parley-chat.js"></script>`,
  );
}

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · Parley demo</title>
<link rel="icon" href="data:,">
<style>
body{margin:0;font:16px/1.5 system-ui,sans-serif;color:#1b1b1f;background:#fafafa}
header{display:flex;justify-content:space-between;padding:14px 24px;background:#fff;border-bottom:1px solid #e3e5e8}
main{max-width:720px;margin:0 auto;padding:24px}
.price{font-size:22px;font-weight:600;color:#3b5bdb}
pre{background:#1b1b1f;color:#e9ecef;padding:12px;border-radius:8px;overflow-x:auto;font-size:13px}
</style>
</head>
<body>
${body}
</body>
</html>
`;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
