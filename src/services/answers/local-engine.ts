import type { RankedHit } from '../knowledge.js';

/**
 * The offline engine: answers from the product's own knowledge, ranked by
 * PostgreSQL full-text search, quoting the best passages — and says so plainly
 * when nothing matches. Deterministic: the same question and knowledge give
 * the same answer, word for word.
 */

export const LOCAL_MODEL = 'local-fts';

export const NO_ANSWER = "I don't know: nothing in our knowledge base answers that question. Could you rephrase it, or ask our team directly?";

export interface Draft {
  content: string;
  /** Knowledge entries the answer quotes, best first. */
  sourceIds: string[];
}

/** An entry holding at least half of the question's search terms (and at least one). */
export function isRelevant(hit: RankedHit): boolean {
  return hit.matched > 0 && hit.matched * 2 >= hit.asked;
}

const WHOLE_ENTRY_CHARS = 400;
const MAX_EXCERPT_CHARS = 600;

export function composeLocalAnswer(question: string, hits: readonly RankedHit[]): Draft {
  const relevant = hits.filter(isRelevant);
  const best = relevant[0];
  if (!best) return { content: NO_ANSWER, sourceIds: [] };
  // A second passage only when it ranks close to the best one: otherwise it is noise.
  const used = relevant.slice(0, 2).filter((hit) => hit === best || hit.score >= best.score / 2);
  const terms = questionTerms(question);
  const parts = used.map((hit, i) => {
    const text = excerpt(hit.entry.content, terms);
    return i === 0 ? text : `${hit.entry.title}: ${text}`;
  });
  return { content: parts.join('\n\n'), sourceIds: used.map((hit) => hit.entry.id) };
}

const STOP = new Set(
  'a an and are can could did do does for from get got have how i if in is it its me my of on or our please should so that the this to was we what when where which who why will with would you your'.split(
    ' ',
  ),
);

function words(text: string): string[] {
  return text
    .toLowerCase()
    .split(/[^\p{L}\p{N}]+/u)
    .filter(Boolean);
}

function questionTerms(question: string): string[] {
  return [...new Set(words(question).filter((w) => !STOP.has(w) && (w.length >= 3 || /\d/.test(w))))];
}

/** "ship" ~ "shipping", "refund" ~ "refunds": a shared start of 4 letters, or the same short word. */
function sameStem(a: string, b: string): boolean {
  if (a.length < 4 || b.length < 4) return a === b;
  return a.slice(0, 4) === b.slice(0, 4) && (a.startsWith(b.slice(0, Math.min(b.length, 6))) || b.startsWith(a.slice(0, Math.min(a.length, 6))));
}

/** The whole entry when short, else its sentences that share most terms with the question, in their order. */
function excerpt(content: string, terms: string[]): string {
  const text = content.trim().replace(/\s+/g, ' ');
  if (text.length <= WHOLE_ENTRY_CHARS) return text;
  const sentences = text.split(/(?<=[.!?])\s+/);
  const scored = sentences.map((sentence, index) => {
    const own = words(sentence);
    return { sentence, index, score: terms.filter((t) => own.some((w) => sameStem(t, w))).length };
  });
  const picked = scored.some((s) => s.score > 0)
    ? scored
        .filter((s) => s.score > 0)
        .sort((a, b) => b.score - a.score || a.index - b.index)
        .slice(0, 3)
    : scored.slice(0, 2);
  const joined = picked
    .sort((a, b) => a.index - b.index)
    .map((s) => s.sentence)
    .join(' ');
  if (joined.length <= MAX_EXCERPT_CHARS) return joined;
  const cut = joined.slice(0, MAX_EXCERPT_CHARS);
  return `${cut.slice(0, Math.max(cut.lastIndexOf(' '), MAX_EXCERPT_CHARS / 2))}…`;
}
