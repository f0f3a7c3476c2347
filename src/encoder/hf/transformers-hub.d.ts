// Types for transformers.js' Hub module, which the package ships under types/ but does not map.
declare module "@xenova/transformers/src/utils/hub.js" {
  export function getModelFile(
    pathOrRepoId: string,
    filename: string,
    fatal?: boolean,
    options?: { revision?: string; cache_dir?: string; local_files_only?: boolean },
  ): Promise<Uint8Array | null>;
}
