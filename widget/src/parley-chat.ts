/**
 * The launcher: what every page that embeds the widget loads. It defines
 * <parley-chat endpoint="https://…/graphql" publishable-key="pk_pub_…"> — a
 * round button fixed in a corner — and nothing else: the chat panel (the
 * conversation, the socket, its styles) is a chunk of its own, imported the
 * first time the button is pressed. Budget: 5 KB gzipped (widget/build.ts).
 *
 * The panel's frame is the launcher's: fixed, its size set before the chunk
 * arrives, so opening it moves nothing on the page (no layout shift) and the
 * chunk only fills a box that is already there.
 */
import type { Panel } from './panel.js';

const CHAT_ICON = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M20 2H4a2 2 0 0 0-2 2v18l4-4h14a2 2 0 0 0 2-2V4a2 2 0 0 0-2-2z"/></svg>';
const CLOSE_ICON =
  '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M19 6.4 17.6 5 12 10.6 6.4 5 5 6.4 10.6 12 5 17.6 6.4 19 12 13.4 17.6 19 19 17.6 13.4 12z"/></svg>';

// Sizes in the launcher, not the panel chunk: the frame has them before the chunk loads.
const STYLE = `:host{all:initial;font:15px/1.4 system-ui,sans-serif;--accent:var(--parley-accent,#3b5bdb)}
.launcher{position:fixed;right:20px;bottom:20px;width:56px;height:56px;border:0;border-radius:50%;background:var(--accent);color:#fff;cursor:pointer;box-shadow:0 4px 14px #0004;z-index:2147483000;display:grid;place-items:center}
.launcher svg{width:26px;height:26px;fill:currentColor}
.launcher:focus-visible{outline:3px solid #fff;box-shadow:0 0 0 6px var(--accent)}
.frame{position:fixed;right:20px;bottom:88px;width:min(380px,calc(100vw - 40px));height:min(560px,calc(100vh - 108px));background:#fff;color:#1b1b1f;border-radius:12px;box-shadow:0 8px 30px #0005;z-index:2147483000;overflow:hidden;display:flex;flex-direction:column;contain:strict}
.frame[hidden]{display:none}
.loading{margin:auto;color:#666}`;

export class ParleyChat extends HTMLElement {
  #button?: HTMLButtonElement;
  #frame?: HTMLElement;
  #panel?: Promise<Panel>;

  connectedCallback(): void {
    if (this.shadowRoot) return;
    const root = this.attachShadow({ mode: 'open' });
    root.innerHTML = `<style>${STYLE}</style><div class="frame" id="panel" role="dialog" aria-label="Chat" hidden><p class="loading">Loading…</p></div><button class="launcher" type="button" aria-controls="panel" aria-expanded="false" aria-label="Open chat">${CHAT_ICON}</button>`;
    this.#frame = root.getElementById('panel')!;
    this.#button = root.querySelector('button')!;
    this.#button.addEventListener('click', () => (this.#frame!.hidden ? void this.open() : this.close()));
    this.#frame.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') {
        event.stopPropagation();
        this.close();
      }
    });
  }

  /** Opens the panel, loading its chunk the first time, and moves the focus into it. */
  async open(): Promise<void> {
    const frame = this.#frame;
    const button = this.#button;
    if (!frame || !button) return;
    frame.hidden = false;
    button.setAttribute('aria-expanded', 'true');
    button.setAttribute('aria-label', 'Close chat');
    button.innerHTML = CLOSE_ICON;
    this.#panel ??= import('./panel.js').then((module) =>
      module.mountPanel(frame, {
        endpoint: new URL(this.getAttribute('endpoint') ?? '/graphql', location.href).href,
        publishableKey: this.getAttribute('publishable-key') ?? '',
        title: this.getAttribute('chat-title') ?? 'Chat with us',
        close: () => this.close(),
      }),
    );
    (await this.#panel).focus();
  }

  /** Hides the panel (the conversation stays live) and gives the focus back to the button. */
  close(): void {
    if (!this.#frame || !this.#button) return;
    this.#frame.hidden = true;
    this.#button.setAttribute('aria-expanded', 'false');
    this.#button.setAttribute('aria-label', 'Open chat');
    this.#button.innerHTML = CHAT_ICON;
    this.#button.focus();
  }
}

if (!customElements.get('parley-chat')) customElements.define('parley-chat', ParleyChat);
