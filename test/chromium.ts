/**
 * Headless Chromium for tests: Debian's `chromium` package (.ci/run installs it when
 * missing). Tests that need it fail, never skip, without it. Also a small PNG decoder
 * (8-bit RGB/RGBA, what Chromium writes) to look at a screenshot's pixels.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { inflateSync } from "node:zlib";

import { tempDir } from "./helpers.js";

export function chromiumPath(): string {
  for (const candidate of ["chromium", "chromium-browser"]) {
    const found = spawnSync("sh", ["-c", `command -v ${candidate}`], { encoding: "utf8" });
    if (found.status === 0 && found.stdout.trim()) return found.stdout.trim();
  }
  throw new Error("chromium is not installed: run `apt-get update && apt-get install -y chromium` (.ci/run does this)");
}

/** Renders `file` in headless Chromium, with every network path turned off, to a PNG. */
export function screenshot(file: string, out: string, width: number, height: number): void {
  execFileSync(chromiumPath(), [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--disable-sync", "--disable-extensions", "--hide-scrollbars", "--force-device-scale-factor=1",
    `--user-data-dir=${tempDir("embedtune-chromium-")}`, `--window-size=${width},${height}`, `--screenshot=${out}`,
    `file://${path.resolve(file)}`,
  ], { stdio: ["ignore", "ignore", "pipe"], timeout: 60_000 });
}

export interface Image {
  width: number;
  height: number;
  rgb: (x: number, y: number) => [number, number, number];
}

export function decodePng(file: string): Image {
  const buf = readFileSync(file);
  if (buf.subarray(0, 8).toString("hex") !== "89504e470d0a1a0a") throw new Error(`${file}: not a PNG`);
  let offset = 8;
  let width = 0;
  let height = 0;
  let colorType = 0;
  const idat: Buffer[] = [];
  while (offset < buf.length) {
    const length = buf.readUInt32BE(offset);
    const type = buf.toString("latin1", offset + 4, offset + 8);
    const data = buf.subarray(offset + 8, offset + 8 + length);
    if (type === "IHDR") {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      colorType = data[9];
      if (data[8] !== 8 || (colorType !== 2 && colorType !== 6) || data[12] !== 0) throw new Error(`${file}: unsupported PNG (bit depth ${data[8]}, colour type ${colorType}, interlace ${data[12]})`);
    } else if (type === "IDAT") idat.push(data);
    offset += 12 + length;
  }
  const bpp = colorType === 6 ? 4 : 3;
  const stride = width * bpp;
  const raw = inflateSync(Buffer.concat(idat));
  const px = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? px[y * stride + i - bpp] : 0;
      const b = y > 0 ? px[(y - 1) * stride + i] : 0;
      const c = i >= bpp && y > 0 ? px[(y - 1) * stride + i - bpp] : 0;
      let v = line[i];
      if (filter === 1) v += a;
      else if (filter === 2) v += b;
      else if (filter === 3) v += (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      px[y * stride + i] = v & 0xff;
    }
  }
  return { width, height, rgb: (x, y) => [px[y * stride + x * bpp], px[y * stride + x * bpp + 1], px[y * stride + x * bpp + 2]] };
}

/** Pixels within `tolerance` (per channel) of the colour "#rrggbb", per 100-pixel band of rows. */
export function colourRows(img: Image, hex: string, tolerance = 24): number[] {
  const want = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  const bands = new Array<number>(Math.ceil(img.height / 100)).fill(0);
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) {
      const got = img.rgb(x, y);
      if (got.every((v, i) => Math.abs(v - want[i]) <= tolerance)) bands[Math.floor(y / 100)]++;
    }
  }
  return bands;
}
