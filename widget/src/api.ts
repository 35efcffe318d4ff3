import { TRANSIENT } from './live.js';

/** GraphQL over HTTP with the publishable key (and the conversation's token once there is one). */

export class ApiError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

/** The conversation this browser keeps for one endpoint and key, across page loads. */
export interface Session {
  conversationId: string;
  token: string;
}

export interface Api {
  /** Runs one operation. `retries`: attempts after a network failure or a transient error (idempotent operations only). */
  request<T>(query: string, variables: Record<string, unknown>, retries?: number): Promise<T>;
  session: Session | null;
  /** The browser's session id (Conversation.sessionId), made once. */
  readonly sessionId: string;
  save(session: Session | null): void;
}

/** Random hex (crypto.randomUUID needs a secure context; getRandomValues does not). */
export function randomId(bytes = 16): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, '0')).join('');
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function createApi(endpoint: string, publishableKey: string): Api {
  const storageKey = `parley-chat:${endpoint}:${publishableKey}`;
  const read = (): { session: Session | null; sessionId: string } | null => {
    try {
      return JSON.parse(localStorage.getItem(storageKey) ?? 'null');
    } catch {
      return null;
    }
  };
  const stored = read();
  const api: Api = {
    session: stored?.session ?? null,
    sessionId: stored?.sessionId ?? randomId(),
    save(session) {
      api.session = session;
      try {
        localStorage.setItem(storageKey, JSON.stringify({ session, sessionId: api.sessionId }));
      } catch {
        // Storage full or refused: the conversation lasts as long as the page.
      }
    },
    async request<T>(query: string, variables: Record<string, unknown>, retries = 0): Promise<T> {
      for (let attempt = 0; ; attempt++) {
        let error: ApiError;
        try {
          const response = await fetch(endpoint, {
            method: 'POST',
            headers: {
              'content-type': 'application/json',
              authorization: `Bearer ${publishableKey}`,
              ...(api.session ? { 'x-conversation-token': api.session.token } : {}),
            },
            body: JSON.stringify({ query, variables }),
          });
          const body = (await response.json()) as { data?: T; errors?: { message: string; extensions?: { code?: string } }[] };
          const first = body.errors?.[0];
          if (!first && body.data) return body.data;
          error = new ApiError(first?.message ?? `HTTP ${response.status}`, first?.extensions?.code ?? `HTTP_${response.status}`);
        } catch (failure) {
          // fetch failed (server restarting, network gone) or the body was not JSON (a proxy's error page).
          error = new ApiError(failure instanceof Error ? failure.message : String(failure), 'NETWORK');
        }
        if (attempt >= retries || !(error.code === 'NETWORK' || TRANSIENT.has(error.code))) throw error;
        await sleep(Math.min(4_000, 300 * 2 ** attempt));
      }
    },
  };
  if (!stored) api.save(null);
  return api;
}
