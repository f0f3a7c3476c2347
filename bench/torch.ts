/**
 * The PyTorch side of the training comparison: Debian's python3-torch (installed with apt
 * when missing; never a dependency of the package or of the tests) run against OpenBLAS
 * (libopenblas0-pthread, selected with LD_LIBRARY_PATH), the fastest BLAS it can use here.
 */
import { existsSync } from "node:fs";

import { benchDir, lastJson, runChild } from "./common.js";

export const PYTHON = "/usr/bin/python3";
const OPENBLAS_DIR = "/usr/lib/x86_64-linux-gnu/openblas-pthread";

/** Installs python3-torch, python3-numpy and libopenblas0-pthread when missing; returns a note on failure. */
export async function ensureTorch(log: (s: string) => void): Promise<string | null> {
  const haveTorch = async () => (await runChild(PYTHON, ["-c", "import torch, numpy"])).code === 0;
  const haveBlas = () => existsSync(`${OPENBLAS_DIR}/libblas.so.3`);
  if ((await haveTorch()) && haveBlas()) return null;
  log("installing python3-torch, python3-numpy and libopenblas0-pthread with apt (once)...");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const update = await runChild("apt-get", ["update", "-qq"], { env });
  if (update.code !== 0) return `apt-get update failed (exit ${update.code}): ${update.stderr.trim().split("\n").pop()}`;
  const install = await runChild("apt-get", ["install", "-y", "-qq", "python3-torch", "python3-numpy", "libopenblas0-pthread"], { env });
  if (install.code !== 0) return `apt-get install failed (exit ${install.code}): ${install.stderr.trim().split("\n").pop()}`;
  if (!(await haveTorch())) return "python3-torch installed but `import torch` fails";
  if (!haveBlas()) return `libopenblas0-pthread installed but ${OPENBLAS_DIR}/libblas.so.3 is missing`;
  return null;
}

/** How torch's threads are split between its own (OpenMP) pool and OpenBLAS's. */
export interface TorchConfig {
  name: string;
  torchThreads: number;
  omp: number;
  blas: number;
  extraEnv?: Record<string, string>;
}

/**
 * The configurations tried at `threads` threads; the comparison takes the fastest. With two
 * threads, torch's OpenMP pool and OpenBLAS's pthreads compete for the same two cores, and
 * which split wins depends on the machine, so all of them are measured.
 */
export function torchConfigs(threads: number): TorchConfig[] {
  if (threads === 1) return [{ name: "torch 1, blas 1", torchThreads: 1, omp: 1, blas: 1 }];
  return [
    { name: `torch ${threads}, blas ${threads}`, torchThreads: threads, omp: threads, blas: threads },
    { name: `torch ${threads}, blas ${threads}, passive wait`, torchThreads: threads, omp: threads, blas: threads, extraEnv: { OMP_WAIT_POLICY: "PASSIVE" } },
    { name: `torch ${threads}, blas 1`, torchThreads: threads, omp: threads, blas: 1 },
    { name: `torch 1, blas ${threads}`, torchThreads: 1, omp: 1, blas: threads },
  ];
}

export interface TorchVariant {
  steps_per_s: number[];
  median_steps_per_s: number;
  first_loss: number;
  final_loss: number;
}

export interface TorchRun {
  torch: string;
  threads: number;
  blas: string[];
  config: string;
  variants: Record<"autograd" | "manual" | "factored", TorchVariant>;
}

/** One run of bench/torch_adapter.py on the inputs in `dir`. */
export async function runTorch(dir: string, cfg: TorchConfig, repeats: number, alpha: number): Promise<TorchRun> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...cfg.extraEnv };
  // Settings that slow current OpenBLAS builds (see the project notes) are left out for torch only.
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  env.LD_LIBRARY_PATH = [OPENBLAS_DIR, process.env.LD_LIBRARY_PATH].filter(Boolean).join(":");
  env.OMP_NUM_THREADS = String(cfg.omp);
  env.OPENBLAS_NUM_THREADS = String(cfg.blas);
  env.MKL_NUM_THREADS = String(cfg.blas);
  const r = await runChild(PYTHON, [`${benchDir}/torch_adapter.py`, "--dir", dir, "--threads", String(cfg.torchThreads), "--repeats", String(repeats), "--alpha", String(alpha)], { env });
  return lastJson<TorchRun>(r, `torch_adapter.py (${cfg.name})`);
}
