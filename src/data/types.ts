/** One training pair (sentence-transformers `anchor`/`positive`[/`negative`] columns). */
export interface PairExample {
  anchor: string;
  positive: string;
  negative?: string; // a hard negative; present on every example or on none
}

/** One pair with a gold similarity. */
export interface ScoredExample {
  sentence1: string;
  sentence2: string;
  score: number; // normalised to [0, 1]: the file's score divided by Dataset.scoreScale
}

export type Dataset =
  | { kind: "pairs"; file: string; examples: PairExample[]; hasNegatives: boolean }
  // scoreScale: the range the file used ([0, 1] or [0, 5], e.g. STSb); scores were divided by it
  | { kind: "scored"; file: string; examples: ScoredExample[]; scoreScale: 1 | 5 };
