import { createRequire } from 'node:module';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { encodeGlobalID } from '@pothos/plugin-relay';
import type { GraphiQLOptions } from 'graphql-yoga';
import { sha256 } from '../infra/hash.js';

/**
 * GraphiQL as Parley serves it: the page from this process, and its scripts,
 * styles and editor workers from this process too (Yoga's default page loads
 * them from unpkg.com, which fails offline). The assets come from
 * @graphql-yoga/render-graphiql's bundled build, are loaded on the first
 * request for one (never in production, where GraphiQL is off) and are cached
 * by browsers for good under a versioned path.
 *
 * In development the page opens with three example tabs and, when the demo
 * product's key is known, that key in the headers editor of each tab.
 * Subscriptions run over SSE: GraphiQL sends the headers editor's values as
 * HTTP headers, so the key authenticates them like any other request (over
 * graphql-ws it would not: GraphiQL sends no connectionParams from them).
 */

const require = createRequire(import.meta.url);
const VERSION = (require('@graphql-yoga/render-graphiql/package.json') as { version: string }).version;
export const GRAPHIQL_ASSETS = `/graphiql/${VERSION}/`;

export interface GraphiQLSetup {
  /** The demo product's key when this data dir knows it; pre-filled in the headers editor. */
  demoKey: string | null;
  /** The demo conversation's database id, for the subscription and mutation examples. */
  demoConversation: () => Promise<string | null>;
}

export interface ParleyGraphiQL {
  /** Yoga's `graphiql` option. */
  options: () => Promise<GraphiQLOptions>;
  /** Yoga's `renderGraphiQL` option: the page, with the assets linked from this server. */
  render: (options: GraphiQLOptions) => string;
  /** Answers a request for one of GraphiQL's assets; false when `req` is not one. */
  serveAsset: (req: IncomingMessage, res: ServerResponse) => boolean;
}

const WITH_DEMO_KEY = `# Press the run button (or Ctrl-Enter) to read the demo
# product: its knowledge base and its conversations.
# Its key is in the Headers tab below: every request from
# this page sends it, and what you read or write belongs
# to the demo product.`;

const WITHOUT_KEY = `# Put your product key in the Headers tab below:
#   { "Authorization": "Bearer sk_live_…" }
# then press the run button (or Ctrl-Enter) to read your
# product: its knowledge base and its conversations.`;

const explore = (intro: string) => /* GraphQL */ `# Welcome to Parley's GraphiQL.
#
${intro}
#
# Next tabs: LiveEvents follows a conversation as it
# happens, SendMessage writes to it. /demo on this server
# shows the chat widget on the demo product.
query Explore {
  viewer {
    name
    stats {
      conversationCount
      messageCount
      feedbackUp
      feedbackDown
    }
    knowledge(first: 5) {
      edges { node { title content tags } }
    }
    conversations(first: 5) {
      edges {
        node {
          id
          title
          messageCount
          messages(last: 10) {
            edges { node { role content createdAt } }
          }
        }
      }
    }
  }
}
`;

const LIVE_EVENTS = /* GraphQL */ `# Follows one conversation live. Press run: it keeps
# running (the button becomes a stop button), and each
# event replaces the previous one on the right. So this
# tab asks only for stored messages and ratings: when a
# message is sent, the assistant's reply is what stays
# on screen.
#
# To watch a whole exchange (the assistant typing, the
# reply streaming in piece by piece, sources, ratings),
# open /demo on this server: the demo shop with the chat
# widget. Its conversations are the visitor's own; the
# Explore tab lists them.
#
# To send to this conversation: run SendMessage in a
# second window of this page (switching tabs in this
# window stops the subscription), or use curl.
# The conversation id is in the Variables tab below.
subscription LiveEvents($conversationId: ID!) {
  conversationEvents(conversationId: $conversationId, only: [MESSAGE_ADDED, FEEDBACK_ADDED]) {
    __typename
    ... on MessageAdded {
      message { id role content createdAt sources { title } }
    }
    ... on FeedbackAdded { feedback { rating comment } }
  }
}
`;

const SEND_MESSAGE = /* GraphQL */ `# Stores a user message in the conversation; whoever
# follows it (LiveEvents) gets it at once. Edit the
# content in the Variables tab below.
mutation SendMessage($conversationId: ID!, $content: String!) {
  sendMessage(input: { conversationId: $conversationId, content: $content }) {
    message { id role content createdAt }
    reply { role content }
  }
}
`;

export function createGraphiQL(setup: GraphiQLSetup): ParleyGraphiQL {
  // Without a known key the editor starts empty: a placeholder would be sent, and refused.
  const headers = JSON.stringify(setup.demoKey ? { Authorization: `Bearer ${setup.demoKey}` } : {}, null, 2);
  const exploreQuery = explore(setup.demoKey ? WITH_DEMO_KEY : WITHOUT_KEY);
  let conversationId: string | undefined;

  return {
    async options() {
      if (conversationId === undefined) {
        const id = await setup.demoConversation().catch(() => null);
        if (id) conversationId = encodeGlobalID('Conversation', id);
      }
      const variables = (extra: Record<string, string> = {}) =>
        JSON.stringify({ conversationId: conversationId ?? 'an id from the Explore tab', ...extra }, null, 2);
      return {
        title: 'Parley GraphiQL',
        // GraphiQL sends the headers editor's values as HTTP headers, over SSE too.
        subscriptionsProtocol: 'SSE',
        headers,
        defaultTabs: [
          { query: exploreQuery, headers },
          { query: LIVE_EVENTS, variables: variables(), headers },
          { query: SEND_MESSAGE, variables: variables({ content: 'Can I return an item I bought?' }), headers },
        ],
      };
    },
    render: (options) => renderPage(options, setup.demoKey),
    serveAsset: assetServer(),
  };
}

function renderPage(options: GraphiQLOptions, demoKey: string | null): string {
  const title = escapeHtml(options.title ?? 'GraphiQL');
  // A fresh data dir means a new demo key and new ids: tabs that GraphiQL kept in
  // localStorage from an earlier one would only answer UNAUTHENTICATED / NOT_FOUND.
  const storageMark = demoKey ? `demo:${fingerprint(demoKey)}` : null;
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>${title}</title>
    <link rel="icon" href="${GRAPHIQL_ASSETS}favicon.ico" />
    <link rel="stylesheet" href="${GRAPHIQL_ASSETS}graphiql.css" />
    <style>
      /* GraphiQL 5 mounts several tabs with stale drag offsets and hides them with
         .graphiql-tab:not(:focus-within){transform:none!important}; pressing a tab
         focuses it, it jumps away from the pointer and the first click is lost.
         Dragging still reorders tabs without the offsets. */
      .graphiql-tab { transform: none !important; }
    </style>
  </head>
  <body id="body" class="no-focus-outline">
    <noscript>GraphiQL needs JavaScript.</noscript>
    <div id="root">Loading ${title}…</div>
    <script>
      self.MonacoEnvironment = {
        globalAPI: false,
        getWorkerUrl: function (moduleId, label) {
          return ${scriptJson({ editorWorkerService: `${GRAPHIQL_ASSETS}editor.worker.js`, json: `${GRAPHIQL_ASSETS}json.worker.js`, graphql: `${GRAPHIQL_ASSETS}graphql.worker.js` })}[label];
        },
      };
      (function (mark) {
        try {
          if (!mark || localStorage.getItem('parley:graphiql') === mark) return;
          for (var i = localStorage.length - 1; i >= 0; i--) {
            var key = localStorage.key(i);
            if (key && key.indexOf('graphiql:') === 0) localStorage.removeItem(key);
          }
          localStorage.setItem('parley:graphiql', mark);
        } catch (e) {}
      })(${scriptJson(storageMark)});
    </script>
    <script src="${GRAPHIQL_ASSETS}yoga-graphiql.js"></script>
    <script>
      YogaGraphiQL.renderYogaGraphiQL(document.getElementById('root'), ${scriptJson(options)});
    </script>
  </body>
</html>
`;
}

const ASSET_NAMES = new Set(['yoga-graphiql.js', 'graphiql.css', 'editor.worker.js', 'json.worker.js', 'graphql.worker.js', 'favicon.ico']);

interface Asset {
  type: string;
  body: Buffer;
  gzipped?: Promise<Buffer>;
}

function assetServer(): ParleyGraphiQL['serveAsset'] {
  let assets: Promise<Map<string, Asset>> | undefined;
  const load = () =>
    (assets ??= import('@graphql-yoga/render-graphiql/graphiql').then((m) => {
      const js = 'text/javascript; charset=utf-8';
      const favicon = m.favicon.slice(m.favicon.indexOf(',') + 1);
      return new Map<string, Asset>([
        ['yoga-graphiql.js', { type: js, body: Buffer.from(m.js) }],
        ['graphiql.css', { type: 'text/css; charset=utf-8', body: Buffer.from(m.css) }],
        ['editor.worker.js', { type: js, body: Buffer.from(m.editorWorkerService) }],
        ['json.worker.js', { type: js, body: Buffer.from(m.jsonWorker) }],
        ['graphql.worker.js', { type: js, body: Buffer.from(m.graphqlWorker) }],
        ['favicon.ico', { type: 'image/x-icon', body: Buffer.from(favicon, 'base64') }],
      ]);
    }));
  const compress = promisify(gzip);

  return (req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0]!;
    if (!path.startsWith('/graphiql/')) return false;
    const name = path.startsWith(GRAPHIQL_ASSETS) ? path.slice(GRAPHIQL_ASSETS.length) : '';
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return true;
    }
    if (!ASSET_NAMES.has(name)) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('Not found\n');
      return true;
    }
    void (async () => {
      const asset = (await load()).get(name)!;
      const useGzip = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? '')) && asset.body.length > 1024;
      const body = useGzip ? await (asset.gzipped ??= compress(asset.body)) : asset.body;
      res.writeHead(200, {
        'content-type': asset.type,
        'content-length': body.length,
        // The path carries the version: its content never changes.
        'cache-control': 'public, max-age=31536000, immutable',
        vary: 'accept-encoding',
        ...(useGzip ? { 'content-encoding': 'gzip' } : {}),
      });
      res.end(req.method === 'HEAD' ? undefined : body);
    })().catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`GraphiQL asset failed: ${error instanceof Error ? error.message : String(error)}\n`);
    });
    return true;
  };
}

/** JSON that is safe inside an inline <script>: no `</script>`, no `<!--`. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A short mark of the demo key: tells data dirs apart without storing the key once more. */
function fingerprint(key: string): string {
  return sha256(key).slice(0, 16);
}
