import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, open, readdir, rename, rm, stat } from "node:fs/promises";
import path from "node:path";

import { EmbedtuneError } from "../errors.js";

/**
 * Crash safety: every file is written under a temporary name, flushed to disk and renamed
 * into place, so a reader sees either the old file or the whole new one, never a torn one.
 * Temporary names contain ".tmp-", which nothing loads.
 */
export async function writeFileAtomic(file: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    await writeAndSync(tmp, data);
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw writeError(err, file);
  }
  await syncDir(path.dirname(file));
}

/**
 * Writes a folder of files as one unit: into a temporary sibling folder first, then
 * renamed onto `dir`. With `overwrite`, an existing folder is replaced only after the new
 * one is complete.
 */
export async function writeFolderAtomic(dir: string, files: Record<string, Uint8Array | string>, overwrite: boolean): Promise<void> {
  const parent = path.dirname(path.resolve(dir));
  await ensureWritableDir(parent);
  const tmp = `${path.resolve(dir)}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  await mkdir(tmp);
  try {
    for (const [name, data] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(tmp, name)), { recursive: true }); // names may hold subfolders: onnx/model.onnx
      await writeAndSync(path.join(tmp, name), data);
    }
    await syncDir(tmp);
    if (existsSync(dir)) {
      if (!overwrite && (await readdir(dir)).length > 0) {
        throw new EmbedtuneError("OUTPUT_EXISTS", `output folder ${dir} already exists and is not empty`, {}, "pass --overwrite to replace it");
      }
      const old = `${path.resolve(dir)}.tmp-old-${randomBytes(4).toString("hex")}`;
      await rename(dir, old);
      await rename(tmp, dir);
      await rm(old, { recursive: true, force: true });
    } else {
      await rename(tmp, dir);
    }
    await syncDir(parent);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw writeError(err, dir);
  }
}

/** Fails early (before hours of work) when `dir` cannot be created or written. */
export async function ensureWritableDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
    const probe = path.join(dir, `.tmp-probe-${process.pid}-${randomBytes(4).toString("hex")}`);
    await writeAndSync(probe, "");
    await rm(probe, { force: true });
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new EmbedtuneError("INVALID_ARGUMENT", `cannot write to folder ${dir} (${reason})`);
  }
}

/**
 * A failed write as one clear line: what could not be written, why (disk full, permission,
 * read-only), and that nothing was changed (the temporary copy is already removed).
 */
function writeError(err: unknown, target: string): unknown {
  if (err instanceof EmbedtuneError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (!code) return err;
  const why: Record<string, string> = { ENOSPC: "no space left on the device", EDQUOT: "disk quota exceeded", EACCES: "permission denied", EPERM: "operation not permitted", EROFS: "read-only file system" };
  return new EmbedtuneError("WRITE_FAILED", `cannot write ${target}: ${why[code] ?? code} (${code}); nothing was changed`);
}

export async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

async function writeAndSync(file: string, data: Uint8Array | string): Promise<void> {
  const handle = await open(file, "w");
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await open(dir, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Some file systems cannot fsync a directory; the rename is still atomic there.
  }
}
