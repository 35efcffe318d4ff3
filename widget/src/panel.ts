/**
 * The chat panel, loaded by the launcher when it is first opened: the
 * conversation (kept across page loads), its live events, typing both ways,
 * ratings and sources (the list itself: message-list.ts).
 */
import { createApi, randomId, type Session } from './api.js';
import { openLive, type LiveStatus } from './live.js';
import { createMessageList, type Entry, type MessageData, type Rating } from './message-list.js';
import { CLOSE_ICON, STYLE } from './panel-style.js';

export interface PanelOptions {
  endpoint: string;
  publishableKey: string;
  title: string;
  close(): void;
}

export interface Panel {
  focus(): void;
}

const MESSAGE = 'id role content createdAt sources{title} feedback{rating}';
const HISTORY = `query($id:ID!){conversation(id:$id){messages(last:50){edges{cursor node{${MESSAGE}}}}}}`;
const START = 'mutation($input:StartConversationInput!){startConversation(input:$input){id conversationToken}}';
const SEND = `mutation($input:SendMessageInput!){sendMessage(input:$input){message{${MESSAGE}}}}`;
const TYPING = 'mutation($input:SetTypingInput!){setTyping(input:$input)}';
const RATE = 'mutation($input:SubmitFeedbackInput!){submitFeedback(input:$input){rating}}';
const EVENTS = `subscription($id:ID!,$after:String){conversationEvents(conversationId:$id,after:$after){__typename ...on MessageAdded{cursor message{${MESSAGE}}} ...on ReplyDelta{messageId delta done} ...on TypingChanged{role isTyping} ...on FeedbackAdded{feedback{rating message{id}}}}}`;

/** Codes that mean this browser's conversation is gone for good (token expired or rotated, conversation deleted). */
const ENDED = new Set(['UNAUTHENTICATED', 'FORBIDDEN', 'NOT_FOUND']);
/** `true` is sent again this often while the visitor types (the server forgets it after PARLEY_TYPING_TTL_MS, 5 s by default). */
const TYPING_REFRESH_MS = 2_000;
/** No keystroke for this long: not typing any more. */
const TYPING_IDLE_MS = 3_000;
/** The visitor's message came back in the sendMessage answer but not on the socket within this: the socket missed it, read again. */
const ECHO_MS = 3_000;
/** Retries of writes that carry an idempotency key (a server restart takes a few seconds). */
const WRITE_RETRIES = 5;

export function mountPanel(frame: HTMLElement, options: PanelOptions): Panel {
  const api = createApi(options.endpoint, options.publishableKey);
  frame.removeAttribute('aria-label');
  frame.setAttribute('aria-labelledby', 'parley-title');
  frame.innerHTML = `<style>${STYLE}</style><header><h2 id="parley-title"></h2><span class="status"></span><button class="close" type="button" aria-label="Close chat">${CLOSE_ICON}</button></header><ol class="log" aria-label="Messages" tabindex="0"></ol><p class="typing" hidden>Assistant is typing<span aria-hidden="true">…</span></p><p class="error" role="alert"></p><form><label class="sr" for="parley-input">Your message</label><textarea id="parley-input" rows="2" maxlength="8000" placeholder="Ask a question…" enterkeyhint="send"></textarea><button type="submit">Send</button></form><div class="sr" aria-live="polite"></div>`;
  const $ = <T extends HTMLElement>(selector: string) => frame.querySelector(selector) as T;
  $('h2').textContent = options.title;
  const log = $<HTMLOListElement>('.log');
  const typingLine = $('.typing');
  const status = $('.status');
  const errorLine = $('.error');
  const input = $<HTMLTextAreaElement>('textarea');
  const form = $<HTMLFormElement>('form');
  const announcer = $('[aria-live]');
  $('.close').addEventListener('click', options.close);

  const messages = createMessageList(log, (entry, rating) => void rate(entry, rating));
  /** The `after` of the next (re)subscription: the cursor of the newest stored message seen. */
  let cursor: string | null = null;
  let live: { close(): void } | undefined;
  let liveReady: Promise<void> = Promise.resolve();
  let markLive = () => {};
  /** Since this subscription started, the assistant's typing was seen: its next reply is followed from the first piece. */
  let followsReplies = false;
  /** The socket was live once: losing it is "Reconnecting…". */
  let wasLive = false;
  let starting: Promise<Session> | undefined;
  let typingSentAt = 0;
  let idleTimer: ReturnType<typeof setTimeout> | undefined;
  /** Messages that came on the socket (MessageAdded), not only in an answer. */
  const echoed = new Set<string>();
  /** The last message that could not be sent, with its key: sent again, it is stored once. */
  let unsent: { content: string; key: string } | undefined;

  const showError = (message = '') => (errorLine.textContent = message);
  const announce = (text: string) => {
    announcer.textContent = '';
    // A new node, so a repeated text is announced again.
    requestAnimationFrame(() => (announcer.textContent = text));
  };

  function scrollDown(force = false): void {
    if (force || log.scrollHeight - log.scrollTop - log.clientHeight < 80) log.scrollTop = log.scrollHeight;
  }

  async function rate(entry: Entry, rating: Rating): Promise<void> {
    const before = entry.li.querySelector('[aria-pressed=true]') as HTMLElement | null;
    messages.showRating(entry, rating);
    try {
      await api.request(RATE, { input: { messageId: entry.id, rating, idempotencyKey: randomId() } }, WRITE_RETRIES);
      showError();
    } catch (error) {
      messages.showRating(entry, (before?.dataset.rating as Rating | undefined) ?? null);
      showError(`Your rating was not saved: ${(error as Error).message}`);
    }
  }

  function onEvent(event: any): void {
    switch (event.__typename) {
      case 'MessageAdded': {
        const known = messages.get(event.message.id);
        // New to the visitor (a draft was seen, never announced): replays of what is shown are not.
        const fresh = !known || known.draft;
        const entry = messages.show(event.message);
        echoed.add(entry.id);
        cursor = event.cursor;
        if (event.message.role === 'ASSISTANT' && fresh) announce(`Assistant: ${event.message.content}`);
        if (entry.role === 'ASSISTANT') typingLine.hidden = true;
        break;
      }
      case 'ReplyDelta':
        // A piece of a reply that began before this subscription would show a text with a hole: its stored message will come.
        messages.piece(event.messageId, event.delta, followsReplies || event.done);
        break;
      case 'TypingChanged':
        // USER: this visitor, maybe in another tab. Only the assistant's typing is shown.
        if (event.role === 'ASSISTANT') {
          typingLine.hidden = !event.isTyping;
          if (event.isTyping) followsReplies = true;
        }
        break;
      case 'FeedbackAdded': {
        const entry = messages.get(event.feedback.message.id);
        if (entry) messages.showRating(entry, event.feedback.rating);
        break;
      }
    }
    scrollDown();
  }

  function onStatus(next: LiveStatus): void {
    if (next === 'live') {
      wasLive = true;
      status.textContent = '';
      showError();
      markLive();
      return;
    }
    // Until it is live again, attempts included: no flicker between them.
    if (wasLive) status.textContent = 'Reconnecting…';
    // Whatever streamed before the drop missed pieces since; the typing state may be over.
    followsReplies = false;
    typingLine.hidden = true;
    messages.staleDrafts();
  }

  function subscribe(session: Session): void {
    live?.close();
    followsReplies = false;
    liveReady = new Promise((resolve) => (markLive = resolve));
    live = openLive({
      url: options.endpoint.replace(/^http/, 'ws'),
      connectionParams: { productKey: options.publishableKey, conversationToken: session.token },
      query: EVENTS,
      variables: () => ({ id: session.conversationId, after: cursor }),
      onData: (data) => onEvent(data.conversationEvents),
      onStatus,
      onRefused: (code, message) => {
        if (ENDED.has(code)) forget();
        else showError(`Live updates stopped: ${message}`);
      },
    });
  }

  /** The conversation cannot be used any more (token expired or rotated): the next message starts a new one. */
  function forget(): void {
    live?.close();
    live = undefined;
    starting = undefined;
    api.save(null);
    cursor = null;
    status.textContent = '';
    typingLine.hidden = true;
  }

  /** Reads the conversation's latest messages, then follows it from the newest one. */
  async function resume(session: Session): Promise<void> {
    try {
      const data = await api.request<any>(HISTORY, { id: session.conversationId }, 2);
      const edges: { cursor: string; node: MessageData }[] = data.conversation?.messages.edges ?? [];
      if (!data.conversation) return forget();
      for (const edge of edges) messages.show(edge.node);
      cursor = edges.at(-1)?.cursor ?? cursor;
      scrollDown(true);
      subscribe(session);
    } catch (error) {
      if (ENDED.has((error as { code?: string }).code ?? '')) return forget();
      showError(`The conversation could not be loaded: ${(error as Error).message}`);
    }
  }

  /** The conversation, started (and followed) the first time the visitor types or sends. */
  function conversation(): Promise<Session> {
    if (api.session) return Promise.resolve(api.session);
    starting ??= api
      .request<any>(START, { input: { sessionId: api.sessionId, idempotencyKey: randomId() } }, WRITE_RETRIES)
      .then(({ startConversation: started }) => {
        api.save({ conversationId: started.id, token: started.conversationToken });
        subscribe(api.session!);
        return api.session!;
      })
      .finally(() => (starting = undefined));
    return starting;
  }

  function typing(isTyping: boolean): void {
    const session = api.session;
    if (!session) return;
    typingSentAt = isTyping ? Date.now() : 0;
    api.request(TYPING, { input: { conversationId: session.conversationId, isTyping } }).catch(() => {});
  }

  input.addEventListener('input', () => {
    clearTimeout(idleTimer);
    if (!input.value.trim()) {
      if (typingSentAt) typing(false);
      return;
    }
    idleTimer = setTimeout(() => typing(false), TYPING_IDLE_MS);
    if (Date.now() - typingSentAt < TYPING_REFRESH_MS) return;
    typingSentAt = Date.now();
    conversation().then(
      () => typing(true),
      () => (typingSentAt = 0),
    );
  });

  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const content = input.value.trim();
    if (content) void send(content);
  });

  async function send(content: string): Promise<void> {
    input.value = '';
    clearTimeout(idleTimer);
    const key = unsent?.content === content ? unsent.key : randomId();
    const entry = messages.pending(`local:${key}`, content);
    scrollDown(true);
    try {
      const session = await conversation();
      if (typingSentAt) typing(false);
      // Sent once the subscription is up, so the reply's first piece finds it listening.
      await Promise.race([liveReady, new Promise((resolve) => setTimeout(resolve, ECHO_MS))]);
      const data = await api.request<any>(
        SEND,
        { input: { conversationId: session.conversationId, content, stream: true, idempotencyKey: key } },
        WRITE_RETRIES,
      );
      unsent = undefined;
      showError();
      const stored = data.sendMessage.message as MessageData;
      messages.show(stored);
      // The socket brings the message too; if it does not, it was not listening yet: read what it missed.
      setTimeout(() => {
        if (!echoed.has(stored.id) && api.session === session) void resume(session);
      }, ECHO_MS);
    } catch (error) {
      messages.remove(entry);
      unsent = { content, key };
      if (!input.value) input.value = content;
      if (ENDED.has((error as { code?: string }).code ?? '')) forget();
      showError(`Your message was not sent: ${(error as Error).message}`);
    }
  }

  if (api.session) void resume(api.session);

  return {
    focus: () => {
      input.focus();
      scrollDown(true);
    },
  };
}
