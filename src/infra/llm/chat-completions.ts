import { withSpan } from '../tracing.js';
import { httpFailure, ProviderError } from './resilience.js';

/**
 * One call to an OpenAI-compatible chat-completions API (OpenAI, Groq, vLLM,
 * llama.cpp, Ollama's /v1...), streamed: `stream: true`, server-sent events of
 * `data: {json}` lines ending with `data: [DONE]`. Every failure becomes a
 * ProviderError telling whether it is worth trying again.
 *
 * Written here rather than through the `openai` package (6.49, tried on
 * 2026-12-07 with its retries off, under the same tests): its stream ends
 * quietly when its signal aborts, so a provider going silent mid-answer (the
 * idle timeout below) looked like a finished answer and was not retried; and
 * a server that ignores `stream` and answers with one JSON body (some
 * OpenAI-compatible servers do) could not be read through its streaming call.
 * Retries, Retry-After, the breaker and the silence bound are Parley's either way.
 */

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  temperature?: number;
}

export interface ChatClientOptions {
  /** API root without a trailing slash, e.g. https://api.openai.com/v1. */
  baseUrl: string;
  apiKey?: string | undefined;
  /** Longest silence — before the response headers, or between two chunks — before the call is given up. */
  timeoutMs: number;
}

export interface ChatResult {
  content: string;
}

/** Calls `onDelta` with each piece of text as it arrives; resolves with the whole text. */
export function streamChatCompletion(
  options: ChatClientOptions,
  request: ChatRequest,
  onDelta: (text: string) => void,
  signal?: AbortSignal,
): Promise<ChatResult> {
  // A span per call (each retry is one), with the model and, once known, the answer's length.
  return withSpan('chat.completions', { 'gen_ai.operation.name': 'chat', 'gen_ai.request.model': request.model }, async (span) => {
    const result = await callChatCompletion(options, request, onDelta, signal);
    span.setAttribute('parley.answer.length', result.content.length);
    return result;
  });
}

async function callChatCompletion(
  options: ChatClientOptions,
  request: ChatRequest,
  onDelta: (text: string) => void,
  signal?: AbortSignal,
): Promise<ChatResult> {
  const controller = new AbortController();
  let timedOut = false;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, options.timeoutMs);
  };
  const onAbort = () => controller.abort();
  signal?.addEventListener('abort', onAbort, { once: true });
  let content = '';
  const failure = (error: unknown): ProviderError => {
    if (error instanceof ProviderError) return error;
    const streamed = content.length > 0;
    if (timedOut) return new ProviderError(`provider sent nothing for ${options.timeoutMs} ms`, 'timeout', { streamed });
    if (signal?.aborted) return new ProviderError('call aborted', 'aborted', { streamed });
    return new ProviderError(`provider unreachable: ${(error as Error)?.message ?? String(error)}`, 'network', { streamed });
  };

  try {
    if (signal?.aborted) throw new ProviderError('call aborted', 'aborted');
    arm();
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'text/event-stream' };
    if (options.apiKey) headers.authorization = `Bearer ${options.apiKey}`;
    const response = await fetch(`${options.baseUrl}/chat/completions`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ ...request, stream: true }),
      signal: controller.signal,
    });
    arm();
    if (!response.ok) throw await httpFailure(response);
    // A server that ignores `stream` answers with one JSON body.
    if (!(response.headers.get('content-type') ?? '').includes('text/event-stream')) {
      const json = (await response.json().catch(() => null)) as { choices?: { message?: { content?: unknown } }[] } | null;
      const text = json?.choices?.[0]?.message?.content;
      if (typeof text !== 'string') throw new ProviderError('provider answered without a message', 'protocol');
      content = text;
      if (text) onDelta(text);
      return { content };
    }
    if (!response.body) throw new ProviderError('provider answered without a body', 'protocol');
    const decoder = new TextDecoder();
    let buffered = '';
    let finished = false;
    const reader = response.body.getReader();
    try {
      while (!finished) {
        const { done, value } = await reader.read();
        if (done) break;
        arm();
        buffered += decoder.decode(value, { stream: true });
        const lines = buffered.split(/\r?\n/);
        buffered = lines.pop()!;
        for (const line of lines) {
          if (!line.startsWith('data:')) continue; // comments (": keep-alive"), event names, blank separators
          const data = line.slice(5).trim();
          if (data === '[DONE]') {
            finished = true;
            break;
          }
          const delta = parseChunk(data, content.length > 0);
          if (delta) {
            content += delta;
            onDelta(delta);
          }
        }
      }
    } finally {
      if (!finished) await reader.cancel().catch(() => undefined);
      else void reader.cancel().catch(() => undefined);
    }
    if (!finished) throw new ProviderError('provider stream ended before [DONE]', 'network', { streamed: content.length > 0 });
    return { content };
  } catch (error) {
    throw failure(error);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
}

type Chunk = { choices?: { delta?: { content?: unknown } }[]; error?: { message?: string } };

function parseChunk(data: string, streamed: boolean): string {
  let chunk: Chunk;
  try {
    chunk = JSON.parse(data) as Chunk;
  } catch {
    throw new ProviderError('provider sent an unreadable chunk', 'protocol', { streamed });
  }
  if (chunk.error) throw new ProviderError(`provider error: ${chunk.error.message ?? 'unknown'}`, 'server', { streamed });
  const text = chunk.choices?.[0]?.delta?.content;
  return typeof text === 'string' ? text : '';
}
