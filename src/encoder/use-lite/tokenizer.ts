/**
 * USE-Lite's SentencePiece unigram tokenizer, reproducing the reference runtime
 * (@energetic-ai/embeddings) id for id; the reference does not export its tokenizer, and
 * the general Unigram tokenizers (transformers.js, sentencepiece) resolve ties and unknown
 * characters differently, so the model's own rules are written here:
 *
 * 1. NFKC; a non-empty text gets a leading "▁" and every space becomes "▁".
 * 2. Viterbi over code points: best[e] = max over pieces p ending at e of
 *    score(p) + best[e - |p|]. A position no piece starts at yields the unknown id 0
 *    (score 0, length 1). Ties go to the later candidate (starts ascending, `>=`), and a
 *    best of exactly 0 counts as "none yet"; null scores count as 0.
 * 3. Backtrack from the end; consecutive unknown ids collapse into one.
 */
const SEPARATOR = "\u2581";
const RESERVED = 6; // ids 0..5: unknown, <s>, </s>, three extra ids
export const UNKNOWN_ID = 0;

export class UseLiteTokenizer {
  private readonly pieces = new Map<string, { id: number; score: number }>();
  private readonly maxPieceLength: number;
  private readonly lengths: Int32Array; // code points of piece `id`

  constructor(vocabulary: ReadonlyArray<readonly [string, number | null]>) {
    let maxLen = 1;
    this.lengths = new Int32Array(vocabulary.length).fill(1);
    for (let id = RESERVED; id < vocabulary.length; id++) {
      const [piece, score] = vocabulary[id];
      const len = [...piece].length;
      this.pieces.set(piece, { id, score: score ?? 0 });
      this.lengths[id] = len;
      if (len > maxLen) maxLen = len;
    }
    this.maxPieceLength = maxLen;
  }

  encode(text: string): number[] {
    const normalized = text.normalize("NFKC");
    if (normalized.length === 0) return [];
    const symbols = [...(SEPARATOR + normalized.replace(/ /g, SEPARATOR))];
    const n = symbols.length;
    const best = new Float64Array(n + 1); // best[e]: score of the best segmentation of symbols[0..e)
    const word = new Int32Array(n + 1); // word[e]: id of the last piece of that segmentation
    // Visit end positions in order, and for each the start positions in ascending order.
    for (let end = 1; end <= n; end++) {
      for (let start = Math.max(0, end - this.maxPieceLength); start < end; start++) {
        const candidate = this.candidateAt(symbols, start, end);
        if (candidate === null) continue;
        const score = candidate.score + best[start];
        if (best[end] === 0 || score >= best[end]) {
          best[end] = score;
          word[end] = candidate.id;
        }
      }
    }
    const ids: number[] = [];
    for (let end = n; end > 0; end -= this.lengths[word[end]]) {
      const id = word[end];
      if (!(id === UNKNOWN_ID && ids.length > 0 && ids[ids.length - 1] === UNKNOWN_ID)) ids.push(id);
    }
    return ids.reverse();
  }

  /** The piece covering symbols[start..end), or the unknown piece for one uncovered symbol. */
  private candidateAt(symbols: string[], start: number, end: number): { id: number; score: number } | null {
    let s = "";
    for (let i = start; i < end; i++) s += symbols[i];
    const hit = this.pieces.get(s);
    if (hit) return hit;
    if (end - start === 1 && !this.anyPieceStartsAt(symbols, start)) return { id: UNKNOWN_ID, score: 0 };
    return null;
  }

  private anyPieceStartsAt(symbols: string[], start: number): boolean {
    let s = "";
    for (let i = start; i < Math.min(symbols.length, start + this.maxPieceLength); i++) {
      s += symbols[i];
      if (this.pieces.has(s)) return true;
    }
    return false;
  }
}
