import { Command, InvalidArgumentError, Option } from "commander";

import { metricsTable } from "./cli/format.js";
import { readInputTexts, writeVectors } from "./cli/encode-io.js";
import { Progress } from "./cli/progress.js";
import { AUTO_BATCH_SIZE, TRAIN_DEFAULTS, type TrainConfig } from "./config.js";
import { Encoder } from "./embed.js";
import { loadFrozenEncoder } from "./encoder/load.js";
import { EXPORT_FORMATS, exportAdapter } from "./export/index.js";
import { EmbedtuneError } from "./errors.js";
import { evaluateFile } from "./evaluate.js";
import { MINE_DEFAULTS, mineHardNegatives } from "./mine.js";
import { train } from "./train/train.js";
import { VERSION } from "./version.js";

/**
 * The command line: flags -> options -> library calls; no math here. Every command prints
 * a human summary, or with --json ends its standard output with one JSON object.
 * Errors print one line "embedtune: error: ..." and exit 1 (--verbose adds the stack).
 */
export function buildProgram(): Command {
  const program = new Command("embedtune")
    .description("Fine-tune text embeddings: train a LoRA adapter on a frozen encoder with a contrastive loss.")
    .version(VERSION)
    .option("--verbose", "print stack traces with errors")
    .exitOverride() // subcommands inherit this: errors come back to main() instead of exiting
    .configureOutput({ outputError: (text, write) => write(`${text.trim().replace(/^error:/, "embedtune: error:")} (see --help)\n`) });

  program
    .command("train")
    .description("train an output-space LoRA adapter on (query, positive) pairs or scored sentence pairs")
    .requiredOption("--data <file|dir>", "training data: JSONL/CSV/TSV with query|anchor,positive[,negative] or sentence1,sentence2,score (a header row, or 2-3 columns without one), or a BEIR folder")
    .option("--out <dir>", "adapter folder to write (adapter_config.json + adapter_model.safetensors)")
    .option("--eval <file>", "evaluation data (a file or a BEIR folder); evaluated before training and after every epoch, and the best adapter is saved")
    .option("--eval-steps <n>", "evaluate every n steps instead of after every epoch", int("--eval-steps"))
    .option("--patience <n>", "stop after n evaluations in a row without a gain in the primary metric (default: never)", int("--patience"))
    .option("--checkpoint-every <n>", "save a checkpoint (adapter, optimizer, position, RNG) every n steps, in <out>.checkpoint; Ctrl-C always saves one", int("--checkpoint-every"))
    .option("--resume", "continue from the checkpoint of an interrupted run with the same command (bitwise the same result)")
    .option("--checkpoint-dir <dir>", "where checkpoints go (default: <out>.checkpoint)")
    .option("--split <name>", "BEIR folder as --data: the qrels split to train on (default: the only one, else train)")
    .option("--eval-split <name>", "BEIR folder as --eval: the qrels split (default: the only one, else test)")
    .option("--holdout <percent>", "BEIR folders: hold out this % of the queries (grouped by shared relevant documents); --data trains on the rest, --eval scores them", num("--holdout"))
    .addOption(new Option("--loss <name>", "mnrl: symmetric InfoNCE with in-batch negatives; cosent: scored pairs (default: by data)").choices(["mnrl", "cosent"]))
    .option("--epochs <n>", `passes over the data (default ${TRAIN_DEFAULTS.epochs})`, int("--epochs"))
    .option("--batch-size <n|all>", `examples per batch, "all" = full batch, 1 = online (default ${AUTO_BATCH_SIZE.mnrl} for mnrl, ${AUTO_BATCH_SIZE.cosent} for cosent)`, batchSize)
    .option("--lr <x>", `peak learning rate of AdamW (default ${TRAIN_DEFAULTS.lr})`, num("--lr"))
    .option("--rank <n>", `LoRA rank r (default ${TRAIN_DEFAULTS.r})`, int("--rank"))
    .option("--alpha <x>", `LoRA lora_alpha; scaling = alpha / rank (default ${TRAIN_DEFAULTS.loraAlpha})`, num("--alpha"))
    .option("--query-only", "apply the adapter to queries only: documents keep their base vectors, so an existing index stays valid")
    .option("--adapter-kind <kind>", `output (LoRA on the pooled vector, trains in seconds) or weights (LoRA inside the encoder's linear layers, PEFT-compatible) (default ${TRAIN_DEFAULTS.adapterKind})`)
    .option("--lora-targets <list>", `weights: comma-separated linear layers, e.g. query,value (default), query,key,value,attention.output.dense,intermediate.dense,output.dense, or all-linear`, (v: string) => v.split(",").map((t) => t.trim()).filter(Boolean))
    .option("--lora-layers <k>", "weights: adapt only the top k layers; the frozen ones below run once per text (default 0 = all)", int("--lora-layers"))
    .option("--lora-dropout <p>", `weights: lora_dropout on the LoRA branch input (default ${TRAIN_DEFAULTS.loraDropout})`, num("--lora-dropout"))
    .option("--lora-cache-mb <n>", `weights: memory cap for the cached hidden states below the adapted layers (default ${TRAIN_DEFAULTS.loraCacheMb})`, num("--lora-cache-mb"))
    .option("--scale <x>", `logit scale = 1/temperature (default ${TRAIN_DEFAULTS.scale})`, num("--scale"))
    .option("--weight-decay <x>", `AdamW decoupled weight decay (default ${TRAIN_DEFAULTS.weightDecay})`, num("--weight-decay"))
    .option("--warmup-ratio <x>", `fraction of steps of linear warm-up (default ${TRAIN_DEFAULTS.warmupRatio})`, num("--warmup-ratio"))
    .option("--max-grad-norm <x>", `clip the global gradient norm (default ${TRAIN_DEFAULTS.maxGradNorm})`, num("--max-grad-norm"))
    .option("--seed <n>", `random seed: same seed, same adapter (default ${TRAIN_DEFAULTS.seed})`, int("--seed"))
    .option("--model <name>", "frozen encoder: default (embedded USE-Lite), a Hub-layout folder, or a Hub id owner/name[@revision]", "default")
    .option("--query-prefix <text>", "put before every query/anchor (default: the model's known prefix, e.g. E5 \"query: \")")
    .option("--doc-prefix <text>", "put before every document/positive (default: the model's known prefix, e.g. E5 \"passage: \")")
    .option("--offline", "never touch the network: Hub models must be cached (also EMBEDTUNE_OFFLINE=1)")
    .option("--vectors <anchors.npy,positives.npy>", "train on precomputed float32 base vectors (rows aligned with the pairs)", npyPair("--vectors"))
    .option("--eval-vectors <anchors.npy,positives.npy>", "precomputed base vectors for --eval", npyPair("--eval-vectors"))
    .option("--cache-dir <dir>", "vector cache folder (default $EMBEDTUNE_CACHE_DIR or ~/.cache/embedtune)")
    .option("--no-cache", "encode without reading or writing the vector cache")
    .option("--overwrite", "replace an existing non-empty --out folder")
    .option("--json", "end standard output with one JSON object")
    .action(async (o) => {
      const progress = new Progress();
      const config: Partial<TrainConfig> & { data: string } = {
        data: o.data,
        out: o.out,
        eval: o.eval,
        loss: o.loss,
        epochs: o.epochs,
        batchSize: o.batchSize,
        lr: o.lr,
        r: o.rank,
        loraAlpha: o.alpha,
        applyTo: o.queryOnly ? "query" : "both",
        adapterKind: o.adapterKind,
        loraTargets: o.loraTargets,
        loraLayers: o.loraLayers,
        loraDropout: o.loraDropout,
        loraCacheMb: o.loraCacheMb,
        scale: o.scale,
        weightDecay: o.weightDecay,
        warmupRatio: o.warmupRatio,
        maxGradNorm: o.maxGradNorm,
        seed: o.seed,
        model: o.model,
        vectors: o.vectors,
        evalVectors: o.evalVectors,
        cacheDir: o.cache === false ? null : (o.cacheDir ?? ""),
        overwrite: o.overwrite === true,
        offline: o.offline === true,
        queryPrefix: o.queryPrefix,
        docPrefix: o.docPrefix,
        evalSteps: o.evalSteps,
        patience: o.patience,
        checkpointEvery: o.checkpointEvery,
        resume: o.resume === true,
        checkpointDir: o.checkpointDir,
        split: o.split,
        evalSplit: o.evalSplit,
        holdout: o.holdout,
      };
      const started = Date.now();
      // First SIGINT/SIGTERM: finish the current step, save a checkpoint, exit 130. Second: exit now.
      let stopRequested = false;
      const onSignal = () => {
        if (stopRequested) process.exit(130);
        stopRequested = true;
      };
      process.on("SIGINT", onSignal);
      process.on("SIGTERM", onSignal);
      const result = await train(config, { onEvent: progress.onTrainEvent, shouldStop: () => stopRequested }).finally(() => {
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
        progress.stop();
      });
      const last = result.history[result.history.length - 1];
      const seconds = (Date.now() - started) / 1000;
      if (o.json) {
        console.log(JSON.stringify({
          command: "train",
          adapter: result.out ?? null,
          metrics: { before: result.metrics.before ?? null, best: result.metrics.best ?? null, after: result.metrics.after ?? null },
          primary_metric: result.primaryMetric ?? null,
          best_step: result.bestStep ?? null,
          evaluations: result.evaluations.map((e) => ({ step: e.step, epoch: e.epoch, [result.primaryMetric ?? "value"]: e.metrics[result.primaryMetric ?? ""] })),
          stopped_at: result.stoppedAt ?? null,
          resumed_from: result.resumedFrom,
          data: result.dataInfo,
          report: result.report ?? null,
          steps: result.history.length + result.skippedSteps,
          skipped_steps: result.skippedSteps,
          final_loss: last?.loss ?? null,
          texts: result.texts,
          seconds,
        }));
        return;
      }
      console.log(`training data: ${result.dataInfo.train}${result.dataInfo.eval ? `\neval data: ${result.dataInfo.eval}` : ""}`);
      console.log(`trained ${result.history.length} steps on ${result.texts.distinct} distinct texts (${result.texts.encoded} encoded, the rest cached) in ${seconds.toFixed(1)} s; final loss ${last?.loss.toFixed(4) ?? "-"}`);
      if (result.texts.truncated > 0) console.log(`${result.texts.truncated} texts were longer than the model's maximum and were truncated`);
      if (result.skippedSteps > 0) console.log(`skipped ${result.skippedSteps} steps with a non-finite loss or gradient`);
      if (result.stoppedAt !== undefined) console.log(`stopped early at step ${result.stoppedAt} of ${result.totalSteps}: ${config.patience} evaluations without a gain`);
      if (result.metrics.before) {
        console.log(`\n${metricsTable({ before: result.metrics.before, best: result.metrics.best, final: result.metrics.after }, result.primaryMetric)}`);
        console.log(result.bestStep === 0 ? "\nno evaluation beat the base encoder: the adapter kept is the untrained one (step 0)" : `\nbest: step ${result.bestStep} of ${result.stoppedAt ?? result.totalSteps}; that adapter is the one kept`);
      }
      console.log(result.out ? `\nadapter written to ${result.out}${result.report ? `\nreport: ${result.report}` : ""}` : "\n(no --out given: adapter not saved)");
    });

  program
    .command("eval")
    .description("evaluate the encoder, with or without an adapter: retrieval metrics for pairs, spearman_cosine for scored pairs")
    .requiredOption("--data <file|dir>", "evaluation data: pairs, scored pairs or a BEIR folder (corpus.jsonl, queries.jsonl, qrels/), as for train")
    .option("--split <name>", "BEIR folder: the qrels split (default: the only one, else test)")
    .option("--holdout <percent>", "BEIR folder: evaluate only the queries that train --holdout <percent> held out", num("--holdout"))
    .option("--adapter <dir>", "adapter folder to apply")
    .option("--model <name>", "frozen encoder: default, a folder or a Hub id (default: the adapter's model)")
    .option("--query-prefix <text>", "override the query prefix (default: the adapter's, else the model's known one)")
    .option("--doc-prefix <text>", "override the document prefix")
    .option("--offline", "never touch the network (also EMBEDTUNE_OFFLINE=1)")
    .option("--cache-dir <dir>", "vector cache folder")
    .option("--no-cache", "encode without the vector cache")
    .option("--json", "end standard output with one JSON object")
    .action(async (o) => {
      const progress = new Progress();
      const result = await evaluateFile({
        data: o.data,
        split: o.split,
        holdout: o.holdout,
        adapter: o.adapter,
        model: o.model,
        cacheDir: o.cache === false ? null : (o.cacheDir ?? ""),
        offline: o.offline === true,
        queryPrefix: o.queryPrefix,
        docPrefix: o.docPrefix,
        onProgress: (done, total) => progress.encode(done, total),
      });
      progress.stop();
      if (o.json) {
        console.log(JSON.stringify({ command: "eval", adapter: o.adapter ?? null, examples: result.examples, data: result.description, primary_metric: result.primary, metrics: result.metrics }));
        return;
      }
      console.log(`${o.data}: ${result.description}${o.adapter ? `, with adapter ${o.adapter}` : ", base encoder"}\n`);
      console.log(metricsTable({ value: result.metrics }, result.primary));
    });

  program
    .command("mine")
    .description("mine hard negatives: for every pair, the anchor's top candidates among all positives, minus its own and likely false negatives; writes triplets for train")
    .requiredOption("--data <file|dir>", "(anchor, positive) pairs: a data file or a BEIR folder, as for train")
    .requiredOption("--out <file>", "triplets to write (.jsonl): anchor, positive, negative per line, one line per negative")
    .option("--k <n>", `candidates retrieved per anchor (default ${MINE_DEFAULTS.k})`, int("--k"))
    .option("--margin <x>", `skip candidates scoring above (positive score - margin) as likely false negatives (default ${MINE_DEFAULTS.margin})`, num("--margin"))
    .option("--negatives <n>", `triplets per pair: the best n candidates left (default ${MINE_DEFAULTS.negatives})`, int("--negatives"))
    .option("--adapter <dir>", "mine with an adapter applied (e.g. from a first round of training)")
    .option("--model <name>", "frozen encoder: default, a folder or a Hub id (default: the adapter's model)")
    .option("--split <name>", "BEIR folder: the qrels split (default: the only one, else train)")
    .option("--holdout <percent>", "BEIR folder: leave out the queries train --holdout <percent> holds out", num("--holdout"))
    .option("--query-prefix <text>", "override the query prefix")
    .option("--doc-prefix <text>", "override the document prefix")
    .option("--offline", "never touch the network (also EMBEDTUNE_OFFLINE=1)")
    .option("--cache-dir <dir>", "vector cache folder")
    .option("--no-cache", "encode without the vector cache")
    .option("--overwrite", "replace an existing --out file")
    .option("--json", "end standard output with one JSON object")
    .action(async (o) => {
      const progress = new Progress();
      const result = await mineHardNegatives({
        data: o.data, out: o.out, k: o.k, margin: o.margin, negatives: o.negatives, adapter: o.adapter, model: o.model,
        split: o.split, holdout: o.holdout, queryPrefix: o.queryPrefix, docPrefix: o.docPrefix, offline: o.offline === true,
        cacheDir: o.cache === false ? null : (o.cacheDir ?? ""), overwrite: o.overwrite === true,
        onProgress: (done, total) => progress.encode(done, total),
      });
      progress.stop();
      const summary = { command: "mine", out: result.out, pairs: result.pairs, triplets: result.triplets, without_negative: result.withoutNegative, candidates: result.candidates, k: result.k, margin: result.margin, negatives: result.negatives };
      if (o.json) {
        console.log(JSON.stringify(summary));
        return;
      }
      console.log(`wrote ${result.triplets} triplets for ${result.pairs} pairs to ${result.out} (top ${result.k} of ${result.candidates} candidates, margin ${result.margin})`);
      if (result.withoutNegative > 0) console.log(`${result.withoutNegative} pairs had no candidate left after the filters and are not in the output`);
    });

  program
    .command("encode")
    .description("embed texts (.txt: one per line, .jsonl: {id?, text}) and write vectors (.jsonl or .npy)")
    .requiredOption("--input <file>", "texts to embed")
    .requiredOption("--output <file>", "vectors out: .jsonl ({id, vector} per line), .npy (float32 [N, dim]) or .safetensors (\"embeddings\" [N, dim])")
    .option("--adapter <dir>", "adapter folder to apply")
    .option("--model <name>", "frozen encoder: default, a folder or a Hub id (default: the adapter's model)")
    .option("--query-prefix <text>", "override the query prefix")
    .option("--doc-prefix <text>", "override the document prefix")
    .option("--offline", "never touch the network (also EMBEDTUNE_OFFLINE=1)")
    .addOption(new Option("--as <side>", "query, document or symmetric (prefixes and query-only adapters differ by side)").choices(["query", "document", "symmetric"]).default("symmetric"))
    .option("--json", "end standard output with one JSON object")
    .action(async (o) => {
      const input = await readInputTexts(o.input);
      const encoder = await Encoder.load({ model: o.model, adapter: o.adapter, offline: o.offline === true, queryPrefix: o.queryPrefix, docPrefix: o.docPrefix });
      try {
        const vectors = o.as === "document" ? await encoder.encodeDocuments(input.texts) : o.as === "query" ? await encoder.encodeQueries(input.texts) : await encoder.encode(input.texts);
        if (encoder.truncated > 0) process.stderr.write(`${encoder.truncated} texts were longer than the model's maximum and were truncated\n`);
        await writeVectors(o.output, input.ids, vectors, encoder.dim);
        const summary = { command: "encode", texts: input.texts.length, dim: encoder.dim, output: o.output, adapter: o.adapter ?? null, as: o.as };
        console.log(o.json ? JSON.stringify(summary) : `wrote ${input.texts.length} vectors of dim ${encoder.dim} to ${o.output}`);
      } finally {
        await encoder.close();
      }
    });
  program
    .command("export")
    .description("write an adapter in a form other tools read: a sentence-transformers folder, one ONNX model, or a merged adapter")
    .requiredOption("--adapter <dir>", "adapter folder to export")
    .addOption(new Option("--format <format>", "sentence-transformers: folder for SentenceTransformer(path, backend=\"onnx\"); onnx: encoder + pooling + adapter + normalize in one graph; merged: adapter folder with W = I + s·B·A").choices(EXPORT_FORMATS).makeOptionMandatory())
    .requiredOption("--out <dir>", "folder to write")
    .option("--overwrite", "replace an existing non-empty --out folder")
    .option("--offline", "never touch the network (the base model must be cached)")
    .option("--cache-dir <dir>", "cache folder for Hub models")
    .option("--json", "end standard output with one JSON object")
    .action(async (o) => {
      const files = await exportAdapter(o.adapter, o.format, { out: o.out, overwrite: o.overwrite === true, offline: o.offline === true, cacheDir: o.cacheDir });
      console.log(o.json ? JSON.stringify({ command: "export", format: o.format, out: o.out, files }) : `wrote ${o.format} export to ${o.out}: ${files.join(", ")}`);
    });

  program
    .command("fetch")
    .description("download a Hub model into the cache (pinned to the commit its revision resolves to), for later --offline use")
    .requiredOption("--model <id>", "Hub id owner/name[@revision], e.g. Xenova/all-MiniLM-L6-v2")
    .option("--cache-dir <dir>", "cache folder (default $EMBEDTUNE_CACHE_DIR or ~/.cache/embedtune)")
    .option("--json", "end standard output with one JSON object")
    .action(async (o) => {
      const encoder = await loadFrozenEncoder(o.model, { cacheRoot: o.cacheDir, onDownload: (file) => process.stderr.write(`fetching ${file}\n`) });
      const { identity, dim } = encoder;
      await encoder.close();
      const summary = { command: "fetch", model: identity.name, revision: identity.revision ?? null, sha256: identity.sha256, dim, source: identity.source };
      console.log(o.json ? JSON.stringify(summary) : `${identity.name} at ${identity.revision ?? "(folder)"}: ready offline (dim ${dim}, onnx sha256 ${identity.sha256.slice(0, 12)})`);
    });
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const verbose = argv.includes("--verbose");
  const program = buildProgram();
  try {
    await program.parseAsync(argv.filter((a) => a !== "--verbose"), { from: "user" });
    return 0;
  } catch (err) {
    const e = err as Error & { code?: string; exitCode?: number };
    if (e.code?.startsWith("commander.")) return e.code === "commander.helpDisplayed" || e.code === "commander.version" ? 0 : (e.exitCode ?? 2);
    if (err instanceof EmbedtuneError && err.code === "INTERRUPTED") {
      process.stderr.write(`embedtune: ${err.message}\n`);
      return 130;
    }
    const message = err instanceof EmbedtuneError ? err.message : `${e.message ?? String(err)} (unexpected; rerun with --verbose and report it)`;
    process.stderr.write(`embedtune: error: ${message.split("\n")[0]}\n`);
    if (verbose && e.stack) process.stderr.write(`${e.stack}\n`);
    return 1;
  }
}

function int(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^-?\d+$/.test(v.trim()) || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`${flag} expects an integer, got "${v}"`);
    return n;
  };
}

function num(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === "" || !Number.isFinite(n)) throw new InvalidArgumentError(`${flag} expects a number, got "${v}"`);
    return n;
  };
}

function batchSize(v: string): number | "all" {
  return v === "all" ? "all" : int("--batch-size")(v);
}

function npyPair(flag: string) {
  return (v: string): { anchors: string; positives: string } => {
    const parts = v.split(",");
    if (parts.length !== 2 || parts.some((p) => p.length === 0)) throw new InvalidArgumentError(`${flag} expects two .npy files separated by a comma`);
    return { anchors: parts[0], positives: parts[1] };
  };
}
