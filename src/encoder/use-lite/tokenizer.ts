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

interface TrieNode {
  children: Map<string, TrieNode>;
  piece: { id: number; score: number } | null; // the piece spelled by the path to this node
}

export class UseLiteTokenizer {
  private readonly root: TrieNode = { children: new Map(), piece: null };
  private readonly lengths: Int32Array; // code points of piece `id`

  constructor(vocabulary: ReadonlyArray<readonly [string, number | null]>) {
    this.lengths = new Int32Array(vocabulary.length).fill(1);
    for (let id = RESERVED; id < vocabulary.length; id++) {
      const [piece, score] = vocabulary[id];
      let node = this.root;
      for (const symbol of piece) {
        let next = node.children.get(symbol);
        if (!next) node.children.set(symbol, (next = { children: new Map(), piece: null }));
        node = next;
      }
      node.piece = { id, score: score ?? 0 };
      this.lengths[id] = [...piece].length;
    }
  }

  encode(text: string): number[] {
    const normalized = text.normalize("NFKC");
    if (normalized.length === 0) return [];
    const symbols = [...(SEPARATOR + normalized.replace(/ /g, SEPARATOR))];
    const n = symbols.length;
    // Lattice edges grouped by end position; starts are visited in ascending order, so each
    // group lists its candidates by ascending start, the order the tie rule depends on.
    const edges: Array<Array<{ start: number; id: number; score: number }>> = Array.from({ length: n + 1 }, () => []);
    for (let start = 0; start < n; start++) {
      let node: TrieNode | undefined = this.root;
      let found = false;
      for (let end = start + 1; end <= n; end++) {
        node = node.children.get(symbols[end - 1]);
        if (!node) break;
        if (node.piece) {
          edges[end].push({ start, ...node.piece });
          found = true;
        }
      }
      if (!found) edges[start + 1].push({ start, id: UNKNOWN_ID, score: 0 });
    }
    const best = new Float64Array(n + 1); // best[e]: score of the best segmentation of symbols[0..e)
    const word = new Int32Array(n + 1); // word[e]: id of the last piece of that segmentation
    for (let end = 1; end <= n; end++) {
      for (const edge of edges[end]) {
        const score = edge.score + best[edge.start];
        if (best[end] === 0 || score >= best[end]) {
          best[end] = score;
          word[end] = edge.id;
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
}
