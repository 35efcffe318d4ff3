/**
 * The panel's list of messages, keyed by id: whatever arrives twice (the
 * sendMessage answer and its MessageAdded, a replay after a reconnect) is
 * shown once. Stored messages in creation order; a reply being streamed
 * (a draft) and messages being sent come after them.
 */
import { THUMB_ICON } from './panel-style.js';

export type Role = 'USER' | 'ASSISTANT' | 'SYSTEM';
export type Rating = 'UP' | 'DOWN';

export interface MessageData {
  id: string;
  role: Role;
  content: string;
  createdAt: string;
  sources: { title: string }[];
  feedback: { rating: Rating } | null;
}

export interface Entry {
  id: string;
  role: Role;
  li: HTMLLIElement;
  text: HTMLElement;
  /** Streamed pieces so far (the stored message replaces them). */
  draft?: boolean;
  /** A draft that missed pieces while the socket was down: it waits for the stored message. */
  stale?: boolean;
  /** Sent from here, not stored yet: the content it will come back with. */
  pending?: string;
}

export type MessageList = ReturnType<typeof createMessageList>;

export function createMessageList(log: HTMLOListElement, onRate: (entry: Entry, rating: Rating) => void) {
  const entries = new Map<string, Entry>();

  function create(id: string, role: Role): Entry {
    const li = document.createElement('li');
    li.className = role.toLowerCase();
    li.innerHTML = `<span class="sr">${role === 'USER' ? 'You' : 'Assistant'}: </span><div class="text"></div>`;
    const entry: Entry = { id, role, li, text: li.querySelector('.text')! };
    entries.set(id, entry);
    return entry;
  }

  function place(entry: Entry, at?: string): void {
    const li = entry.li;
    if (at) li.dataset.at = at;
    else delete li.dataset.at;
    li.remove();
    const before = at ? [...log.children].find((other) => !(other as HTMLElement).dataset.at || (other as HTMLElement).dataset.at! > at) : undefined;
    log.insertBefore(li, before ?? null);
  }

  function showRating(entry: Entry, rating: Rating | null): void {
    for (const button of entry.li.querySelectorAll<HTMLButtonElement>('.rate button')) {
      button.setAttribute('aria-pressed', String(button.dataset.rating === rating));
    }
  }

  /** Sources under an answer, and its thumbs. */
  function decorate(entry: Entry, message: MessageData): void {
    entry.li.querySelector('.sources')?.remove();
    if (message.sources.length) {
      const list = document.createElement('ul');
      list.className = 'sources';
      list.setAttribute('aria-label', 'Sources');
      for (const source of message.sources) list.appendChild(document.createElement('li')).textContent = source.title;
      entry.li.insertBefore(list, entry.li.querySelector('.rate'));
    }
    if (!entry.li.querySelector('.rate')) {
      const group = document.createElement('div');
      group.className = 'rate';
      group.setAttribute('role', 'group');
      group.setAttribute('aria-label', 'Rate this answer');
      group.innerHTML = `<button type="button" data-rating="UP" aria-pressed="false" aria-label="Helpful">${THUMB_ICON}</button><button type="button" data-rating="DOWN" aria-pressed="false" aria-label="Not helpful">${THUMB_ICON}</button>`;
      group.addEventListener('click', (event) => {
        const button = (event.target as Element).closest('button');
        if (button) onRate(entry, button.dataset.rating as Rating);
      });
      entry.li.appendChild(group);
    }
    showRating(entry, message.feedback?.rating ?? null);
  }

  return {
    get: (id: string) => entries.get(id),
    showRating,

    /** Shows a stored message, once: replaces the draft or the pending message it was. */
    show(message: MessageData): Entry {
      let entry = entries.get(message.id);
      if (!entry && message.role === 'USER') {
        entry = [...entries.values()].find((e) => e.pending === message.content);
        if (entry) {
          entries.delete(entry.id);
          entries.set((entry.id = message.id), entry);
        }
      }
      entry ??= create(message.id, message.role);
      const unplaced = entry.draft || entry.pending !== undefined || !entry.li.dataset.at;
      entry.draft = entry.stale = false;
      entry.pending = undefined;
      entry.li.classList.remove('draft', 'stale', 'pending');
      entry.text.textContent = message.content;
      if (message.role === 'ASSISTANT') decorate(entry, message);
      if (unplaced) place(entry, message.createdAt);
      return entry;
    },

    /** A piece of a streamed reply. A reply not seen yet starts a draft only when `start` allows it. */
    piece(messageId: string, delta: string, start: boolean): void {
      let entry = entries.get(messageId);
      if (!entry) {
        if (!delta || !start) return;
        entry = create(messageId, 'ASSISTANT');
        entry.draft = true;
        entry.li.classList.add('draft');
        place(entry);
      }
      if (entry.draft && !entry.stale) entry.text.textContent += delta;
    },

    /** The socket dropped: drafts shown so far miss what was sent meanwhile. */
    staleDrafts(): void {
      for (const entry of entries.values()) {
        if (entry.draft && !entry.stale) {
          entry.stale = true;
          entry.li.classList.add('stale');
        }
      }
    },

    /** The visitor's message, shown as it is sent. */
    pending(id: string, content: string): Entry {
      const entry = create(id, 'USER');
      entry.pending = content;
      entry.text.textContent = content;
      entry.li.classList.add('pending');
      place(entry);
      return entry;
    },

    remove(entry: Entry): void {
      entries.delete(entry.id);
      entry.li.remove();
    },
  };
}
