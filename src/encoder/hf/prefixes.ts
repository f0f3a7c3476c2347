/**
 * Query and document prefixes: some embedding models were trained with an instruction in
 * front of the text and give their best vectors only with it.
 */
export interface Prefixes {
  query: string; // before a search query
  document: string; // before a document / passage
  symmetric: string; // before both texts of a symmetric task (similarity of scored pairs, plain encode)
}

export const NO_PREFIXES: Prefixes = { query: "", document: "", symmetric: "" };

/** Known defaults by model family, matched on the model id (as their model cards state). */
export function knownPrefixes(modelId: string): Prefixes {
  const id = modelId.toLowerCase();
  // E5: "query: " / "passage: ", and "query: " on both sides of symmetric tasks.
  if (/(^|[/-])(multilingual-)?e5-/.test(id)) return { query: "query: ", document: "passage: ", symmetric: "query: " };
  // BGE v1.5 English: an instruction for retrieval queries only.
  if (/bge-[a-z]+-en/.test(id)) return { query: "Represent this sentence for searching relevant passages: ", document: "", symmetric: "" };
  return NO_PREFIXES;
}

/**
 * The prefixes in force: explicit ones win; an explicit query prefix also serves symmetric
 * tasks; otherwise the model's known defaults, else none.
 */
export function resolvePrefixes(defaults: Prefixes | undefined, query?: string, document?: string): Prefixes {
  const base = defaults ?? NO_PREFIXES;
  return {
    query: query ?? base.query,
    document: document ?? base.document,
    symmetric: query ?? base.symmetric,
  };
}
