/** Importing the package defines <parley-chat endpoint="…" publishable-key="…">. */
export declare class ParleyChat extends HTMLElement {
  /** Opens the chat panel (loading it on first use). */
  open(): Promise<void>;
  close(): void;
}

declare global {
  interface HTMLElementTagNameMap {
    'parley-chat': ParleyChat;
  }
}
