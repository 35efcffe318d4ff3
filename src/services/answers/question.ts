/**
 * What makes two questions "the same question" for the answer cache, and which
 * model a question deserves.
 */

/** Politeness and chat filler that never changes what is asked (matched as whole words, in order). */
const FILLER = [
  'hi there',
  'hello there',
  'hey there',
  'good morning',
  'good afternoon',
  'good evening',
  'hi',
  'hello',
  'hey',
  'please',
  'pls',
  'plz',
  'kindly',
  'can you',
  'could you',
  'would you',
  'will you',
  'can u',
  'could u',
  'tell me',
  'let me know',
  'i would like to know',
  'id like to know',
  'i want to know',
  'i was wondering',
  'do you know',
  'thank you',
  'thanks',
  'thx',
  'just',
];

/** Question words contracted with "is" ("what's" once its apostrophe is dropped), written out. */
const CONTRACTED: Record<string, string[]> = {
  whats: ['what', 'is'],
  wheres: ['where', 'is'],
  whens: ['when', 'is'],
  whos: ['who', 'is'],
  hows: ['how', 'is'],
  whys: ['why', 'is'],
};

/** Filler phrases as word lists, longest first, so "hi there" is removed whole before "hi". */
const FILLER_WORDS = FILLER.map((f) => f.split(' ')).sort((a, b) => b.length - a.length);

/**
 * The answer cache's key for a question: Unicode-normalised, lower case,
 * apostrophes dropped (`what's` = `whats`), other punctuation and spacing
 * collapsed, filler words removed. "Can you please tell me how long shipping
 * takes?!" and "how long shipping takes" are one key; "Can I return shoes?"
 * keeps its "can i" (a different question from "return shoes").
 */
export function normalizeQuestion(question: string): string {
  const words = question
    .normalize('NFKC')
    .toLowerCase()
    .replace(/['’‘`´]/g, '')
    .split(/[^\p{L}\p{N}]+/u)
    .filter(Boolean);
  const kept: string[] = [];
  for (let i = 0; i < words.length; ) {
    const filler = FILLER_WORDS.find((phrase) => phrase.every((word, j) => words[i + j] === word));
    if (filler) i += filler.length;
    else {
      kept.push(...(CONTRACTED[words[i]!] ?? [words[i]!]));
      i += 1;
    }
  }
  // A question made only of filler ("thanks!") is still itself.
  return (kept.length ? kept : words).join(' ');
}

/** Words that change what is asked but that PostgreSQL's english configuration drops as stop words. */
const QUESTION_WORDS = new Set(['what', 'when', 'where', 'which', 'who', 'whom', 'whose', 'why', 'how']);
const NEGATIONS = new Set([
  'not',
  'no',
  'never',
  'nor',
  'none',
  'nothing',
  'without',
  'cannot',
  'cant',
  'dont',
  'doesnt',
  'didnt',
  'isnt',
  'arent',
  'wasnt',
  'werent',
  'wont',
  'wouldnt',
  'shouldnt',
  'couldnt',
  'hasnt',
  'havent',
  'hadnt',
  'aint',
]);
/**
 * Stop words that still tell two questions apart — a direction, an order in time, a comparison, a
 * choice — each kept with the word it governs: "from standard to express" is not "from express to
 * standard", "faster than standard" is not "faster than express", "in store" is not "online".
 */
const RELATIONS = new Set(
  'to from before after with for in on over under above below up down more less most least than only same again off out into or'.split(' '),
);
/** Words skipped on the way from a relation to the word it governs ("to the store", "for my order"). */
const DETERMINERS = new Set('a an the my your our their his her its this that these those some any each every all'.split(' '));

/**
 * The answer cache's key for a standalone question: what it asks about — the lexemes PostgreSQL's
 * `to_tsvector('english', …)` makes of it (stemmed, stop words dropped; what knowledge search ranks
 * with, so two questions with one key rank the same passages), in no particular order — and the
 * words that english analysis drops but that change the question: its question words ("when" /
 * "where"; "which" counts as "what"), a negation ("can I" / "can't I"), and relations with the word
 * each governs (its first four letters: "to Canada" / "from Canada", "on Friday … on Monday" /
 * "on Monday … on Friday"). "How long does shipping take?" and "Shipping — how long does it take?"
 * are one key; "Do you ship to Canada?" and "Do you ship from Canada?" are two. A question with no
 * lexeme ("how are you?") is keyed by its normalised words. bench/answer-eval measures it: no
 * near-miss of its set may share a key.
 */
export function lexicalKey(normalized: string, lexemes: readonly string[]): string {
  if (!lexemes.length) return `=${normalized}`;
  const words = normalized.split(' ');
  const asked = [...new Set(words.filter((word) => QUESTION_WORDS.has(word)).map((word) => (word === 'which' ? 'what' : word)))].sort();
  const negated = words.some((word) => NEGATIONS.has(word));
  // Each relation with what it governs; a relation used twice keeps the order of its words.
  const governed = new Map<string, string[]>();
  words.forEach((word, i) => {
    if (!RELATIONS.has(word)) return;
    let j = i + 1;
    while (j < words.length && DETERMINERS.has(words[j]!)) j += 1;
    const next = words[j];
    const object = next === undefined || RELATIONS.has(next) || QUESTION_WORDS.has(next) ? '' : next.slice(0, 4);
    governed.set(word, [...(governed.get(word) ?? []), object]);
  });
  const relations = [...governed].map(([word, objects]) => `${word}:${objects.join('>')}`).sort();
  return `~${asked.join(',')}|${negated ? '!' : ''}|${relations.join(',')}|${[...new Set(lexemes)].sort().join(' ')}`;
}

const COMPLEX =
  /\b(compare|comparison|comparing|difference|differences|differ|versus|vs|explain|explanation|pros|cons|trade ?offs?|step by step|in detail|detailed|analy[sz]e)\b/i;

/** More than one question, or wording that asks for reasoning rather than a fact. */
export function isComplexQuestion(question: string): boolean {
  const questions = (question.match(/\?+/g) ?? []).length;
  return questions > 1 || COMPLEX.test(question);
}

export interface Routing {
  fastModel: string;
  largeModel: string;
  /** Longest question (in characters) the fast model gets; 0 = never. */
  fastMaxChars: number;
}

/** Short, simple questions go to the fast model, the others to the large one. */
export function routeModel(question: string, routing: Routing): string {
  const length = [...question.trim()].length;
  return length <= routing.fastMaxChars && !isComplexQuestion(question) ? routing.fastModel : routing.largeModel;
}
