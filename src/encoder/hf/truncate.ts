/**
 * Tokenising only as much of a long text as the model will see. A description of 2,000
 * characters cut to 48 or 256 tokens keeps a fraction of them, yet tokenising it whole costs
 * time in proportion to all of it; on small models that is most of encode()'s time.
 *
 * Exactness: for tokenizers that split words at spaces before anything else looks across
 * them (BERT's pre-tokenizer, Whitespace, WhitespaceSplit) and whose normalizers act
 * on characters one by one, the tokens of `text.slice(0, i)`, where text[i] is a space and
 * text[i - 1] is not whitespace, are the first tokens of the whole text's. So when such a
 * prefix already yields more than maxLength ids, cutting those gives exactly what cutting the
 * whole text's ids gives. Any other tokenizer, or a prefix that comes out short, takes the
 * whole text: the result never depends on the shortcut, only the time does. (ByteLevel and
 * Metaspace tokenizers would likely qualify too, with care about whitespace runs, but nothing
 * here checks them against whole-text tokenisation, so they take the whole text.)
 */

/** Pre-tokenizers that end every word at a space, whatever follows. */
const SPLITS_AT_SPACES = new Set(["BertPreTokenizer", "Whitespace", "WhitespaceSplit"]);
/** Pre-tokenizers that only split further within a space-separated word (inside a Sequence). */
const SPLITS_WITHIN_WORDS = new Set(["Punctuation", "Digits"]);
/** Normalizers that map characters one by one (or a base character with its marks). */
const LOCAL_NORMALIZERS = new Set(["BertNormalizer", "Lowercase", "NFC", "NFD", "NFKC", "NFKD", "StripAccents"]);

type Json = Record<string, unknown> | null | undefined;

/** Whether a tokenizer.json's pipeline lets a long text be tokenised by its prefix (see above). */
export function prefixTokenizable(tokenizerJson: Record<string, unknown>): boolean {
  const added = (tokenizerJson.added_tokens ?? []) as Array<{ content?: string }>;
  if (added.some((t) => typeof t.content !== "string" || /\s/.test(t.content))) return false; // an added token across a space
  return localNormalizer(tokenizerJson.normalizer as Json) && spaceSplitting(tokenizerJson.pre_tokenizer as Json);
}

function localNormalizer(n: Json): boolean {
  if (!n) return true;
  if (n.type === "Sequence") return ((n.normalizers ?? []) as Json[]).every(localNormalizer);
  return LOCAL_NORMALIZERS.has(String(n.type));
}

function spaceSplitting(p: Json): boolean {
  if (!p) return false; // the whole text is one word
  if (p.type === "Sequence") {
    const parts = (p.pretokenizers ?? []) as Json[];
    return parts.some(spaceSplitting) && parts.every((q) => spaceSplitting(q) || SPLITS_WITHIN_WORDS.has(String(q?.type)));
  }
  return SPLITS_AT_SPACES.has(String(p.type));
}

/**
 * Token ids with special tokens, cut to maxLength with the last id (the end token, [SEP] or
 * </s>) kept last, as sentence-transformers truncates. `prefixOk` is prefixTokenizable(...) of
 * the tokenizer behind `encode`.
 */
export class TruncatingTokenizer {
  /** Characters per token seen so far: only sets how long a prefix to try first. */
  private charsPerToken = 4;

  constructor(
    private readonly encode: (text: string) => number[],
    readonly maxLength: number,
    private readonly prefixOk: boolean,
  ) {}

  tokenize(text: string): { ids: number[]; truncated: boolean } {
    const { maxLength } = this;
    if (this.prefixOk) {
      let budget = Math.ceil(maxLength * this.charsPerToken * 1.25) + 16;
      let previous = 0;
      while (budget < text.length) {
        let cut = spaceBefore(text, budget);
        if (cut <= previous) cut = spaceAfter(text, previous + 1); // a long run without spaces: past it
        if (cut <= 0) break; // no usable space left: tokenise it all
        previous = cut;
        const ids = this.encode(text.slice(0, cut));
        this.learn(cut, ids.length);
        if (ids.length > maxLength) return { ids: cutTo(ids, maxLength), truncated: true };
        // Short: extrapolate from this prefix's rate, with a margin, rather than guess again.
        budget = Math.max(cut + 1, Math.ceil((1.25 * cut * (maxLength + 1)) / Math.max(ids.length, 1)));
      }
    }
    const ids = this.encode(text);
    this.learn(text.length, ids.length);
    return ids.length <= maxLength ? { ids, truncated: false } : { ids: cutTo(ids, maxLength), truncated: true };
  }

  private learn(chars: number, ids: number): void {
    if (ids >= 8) this.charsPerToken = 0.9 * this.charsPerToken + 0.1 * (chars / ids);
  }
}

/** The last index i <= from where text[i] is a space and text[i - 1] is not whitespace; -1 if none. */
function spaceBefore(text: string, from: number): number {
  for (let i = text.lastIndexOf(" ", from); i > 0; i = text.lastIndexOf(" ", i - 1)) {
    if (!/\s/.test(text[i - 1])) return i;
  }
  return -1;
}

/** The first index i >= from where text[i] is a space and text[i - 1] is not whitespace; -1 if none. */
function spaceAfter(text: string, from: number): number {
  for (let i = text.indexOf(" ", Math.max(from, 1)); i > 0; i = text.indexOf(" ", i + 1)) {
    if (!/\s/.test(text[i - 1])) return i;
  }
  return -1;
}

function cutTo(ids: number[], maxLength: number): number[] {
  const out = ids.slice(0, maxLength);
  out[maxLength - 1] = ids[ids.length - 1]; // the end token stays last
  return out;
}
