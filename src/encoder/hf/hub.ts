import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import path from "node:path";

import { env } from "@xenova/transformers";
// transformers.js' Hub download with its file cache (not re-exported from the package root).
import { getModelFile } from "@xenova/transformers/src/utils/hub.js";

import { EmbedtuneError } from "../../errors.js";
import { writeFileAtomic } from "../../io/atomic.js";

/**
 * Where a `--model` value points: a local folder in the Hub layout, or a Hugging Face Hub
 * repository `owner/name[@revision]`, downloaded once into the cache and pinned to the commit
 * the revision resolved to:
 *
 *   <cache>/hub/<owner>/<name>/<commit sha>/{config.json, tokenizer.json, onnx/model.onnx, ...}
 *   <cache>/hub/refs/<owner>/<name>/<revision>      the commit sha that revision resolved to
 *
 * A download lands in a temporary folder and is renamed into place when every file is
 * there, so an interrupted download never looks like a model.
 */
export interface ResolvedModel {
  dir: string;
  /** Hub id, or the folder's absolute path. */
  id: string;
  /** Commit sha for Hub models, null for folders. */
  revision: string | null;
  source: string;
}

export interface ResolveOptions {
  offline: boolean;
  cacheRoot: string;
  onFile?: (file: string) => void;
}

const REQUIRED = ["config.json", "tokenizer.json", "tokenizer_config.json"];
const OPTIONAL = ["modules.json", "1_Pooling/config.json", "special_tokens_map.json"];
const ONNX = ["onnx/model.onnx", "onnx/model_quantized.onnx"];
const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;
const SHA = /^[0-9a-f]{40}$/;

export function isOffline(flag = false): boolean {
  return flag || ["1", "true", "yes"].includes((process.env.EMBEDTUNE_OFFLINE ?? process.env.HF_HUB_OFFLINE ?? "").toLowerCase());
}

export function hubEndpoint(): string {
  return (process.env.HF_ENDPOINT ?? "https://huggingface.co").replace(/\/+$/, "");
}

export async function resolveModel(spec: string, options: ResolveOptions): Promise<ResolvedModel> {
  const asPath = path.resolve(spec);
  if ((await stat(asPath).catch(() => null))?.isDirectory()) {
    return { dir: asPath, id: asPath, revision: null, source: `folder ${asPath}` };
  }
  const [id, requested = "main"] = spec.split("@");
  if (!HUB_ID.test(id) || spec.startsWith(".") || spec.startsWith("/")) {
    throw new EmbedtuneError("FILE_NOT_FOUND", `model "${spec}" is neither a folder nor a Hub id (owner/name[@revision])`, { field: "model" });
  }
  const hubDir = path.join(options.cacheRoot, "hub");
  const refFile = path.join(hubDir, "refs", id, requested);
  let sha = SHA.test(requested) ? requested : null;
  if (sha === null && options.offline) sha = await readFile(refFile, "utf8").then((s) => s.trim(), () => null);
  if (sha === null && options.offline) throw notCached(spec, [refFile]);
  if (sha === null) {
    sha = await resolveRevision(id, requested);
    await mkdir(path.dirname(refFile), { recursive: true });
    await writeFileAtomic(refFile, `${sha}\n`);
  }
  const dir = path.join(hubDir, id, sha);
  const source = `hub ${id}@${sha}`;
  if (isComplete(dir)) {
    await verifyManifest(dir, spec);
    return { dir, id, revision: sha, source };
  }
  if (options.offline) throw notCached(spec, [dir]);
  await download(id, sha, hubDir, dir, options.onFile);
  return { dir, id, revision: sha, source };
}

function isComplete(dir: string): boolean {
  return REQUIRED.every((f) => existsSync(path.join(dir, f))) && ONNX.some((f) => existsSync(path.join(dir, f)));
}

/** GET <endpoint>/api/models/<id>/revision/<revision> -> its commit sha. */
async function resolveRevision(id: string, revision: string): Promise<string> {
  const url = `${hubEndpoint()}/api/models/${id}/revision/${encodeURIComponent(revision)}`;
  const headers: Record<string, string> = {};
  const token = process.env.HF_TOKEN;
  if (token) headers.Authorization = `Bearer ${token}`;
  let response: Response;
  try {
    response = await fetch(url, { headers });
  } catch (err) {
    throw new EmbedtuneError("FILE_NOT_FOUND", `cannot reach the Hub to resolve ${id}@${revision} (${(err as Error).message})`, { field: "model" }, "pass --offline with a cached model, or a local folder");
  }
  if (!response.ok) {
    throw new EmbedtuneError("FILE_NOT_FOUND", `the Hub answered ${response.status} for ${id}@${revision}`, { field: "model" }, "check the model id and revision (private models need HF_TOKEN)");
  }
  const sha = ((await response.json()) as { sha?: unknown }).sha;
  if (typeof sha !== "string" || !SHA.test(sha)) throw new EmbedtuneError("INVALID_FILE", `the Hub gave no commit sha for ${id}@${revision}`);
  return sha;
}

async function download(id: string, sha: string, hubDir: string, dir: string, onFile?: (file: string) => void): Promise<void> {
  const staging = path.join(hubDir, `.tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
  env.remoteHost = `${hubEndpoint()}/`;
  env.allowRemoteModels = true;
  env.allowLocalModels = false;
  try {
    const get = async (file: string, fatal: boolean) => {
      onFile?.(file);
      try {
        return (await getModelFile(id, file, fatal, { revision: sha, cache_dir: staging })) !== null;
      } catch (err) {
        if (!fatal) return false;
        throw new EmbedtuneError("FILE_NOT_FOUND", `cannot download ${file} of ${id}@${sha.slice(0, 12)} (${(err as Error).message.split("\n")[0]})`, { field: "model" });
      }
    };
    for (const file of REQUIRED) await get(file, true);
    for (const file of OPTIONAL) await get(file, false);
    if (!(await get(ONNX[0], false)) && !(await get(ONNX[1], false))) {
      throw new EmbedtuneError("FILE_NOT_FOUND", `${id}@${sha.slice(0, 12)} has no onnx/model.onnx or onnx/model_quantized.onnx`, { field: "model" }, "use an ONNX export, e.g. a Xenova/... repository");
    }
    await writeManifest(path.join(staging, id, sha));
    await mkdir(path.dirname(dir), { recursive: true });
    await rename(path.join(staging, id, sha), dir);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** sha256 of every downloaded file, recorded at download and checked at every load. */
const MANIFEST = ".embedtune-files.json";

async function writeManifest(dir: string): Promise<void> {
  const files: Record<string, string> = {};
  for (const file of await listFiles(dir)) files[file] = await sha256File(path.join(dir, file));
  await writeFileAtomic(path.join(dir, MANIFEST), `${JSON.stringify(files, null, 2)}\n`);
}

async function verifyManifest(dir: string, spec: string): Promise<void> {
  const text = await readFile(path.join(dir, MANIFEST), "utf8").catch(() => null);
  if (text === null) return; // a folder placed by hand: its ONNX hash is still recorded in adapters
  const files = JSON.parse(text) as Record<string, string>;
  for (const [file, expected] of Object.entries(files)) {
    const actual = await sha256File(path.join(dir, file)).catch(() => "missing");
    if (actual !== expected) {
      throw new EmbedtuneError("INVALID_FILE", `${file} of ${spec} changed since it was downloaded (sha256 ${actual.slice(0, 12)}, recorded ${expected.slice(0, 12)})`, { file: path.join(dir, file) }, `delete ${dir} to download it again`);
    }
  }
}

async function listFiles(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(path.join(dir, prefix), { withFileTypes: true })) {
    const rel = path.join(prefix, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(dir, rel)));
    else if (entry.name !== MANIFEST) out.push(rel);
  }
  return out;
}

async function sha256File(file: string): Promise<string> {
  return createHash("sha256").update(await readFile(file)).digest("hex");
}

function notCached(spec: string, lookedIn: string[]): EmbedtuneError {
  return new EmbedtuneError(
    "FILE_NOT_FOUND",
    `model ${spec} is not in the local cache and --offline forbids downloading it (looked in ${lookedIn.join(", ")})`,
    { field: "model" },
    `run "embedtune fetch --model ${spec}" where the Hub is reachable, or pass a local folder with --model ./folder`,
  );
}
