/**
 * Generates the test images in the tiny model's colours (models/tiny-generator/layout.ts) and the root
 * test_input.json. Run after changing the layout: `npm run build && node dist/scripts/generate-fixtures.js`.
 *
 * - room.jpg / room.png: 800x533 room: walls, one door, two windows, floor (the original API's example size).
 * - portrait-exif6.jpg: a photo-like portrait (400x600 as displayed) stored sideways with EXIF orientation 6.
 * - alpha.png: RGBA; a door hidden under alpha 0 and a window under alpha 128 (alpha is dropped, not composited).
 * - gray.jpg: single-channel JPEG with a near-white "ceiling" patch.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import sharp from "sharp";
import { findProjectRoot, isMainModule } from "../engine/module-paths.js";
import { PALETTE, ROOM } from "../models/tiny-generator/layout.js";
import type { PaletteName } from "../models/tiny-generator/layout.js";

export const FIXTURES_DIR = "test/fixtures";

const rgb = (name: PaletteName) => `rgb(${PALETTE[name].join(",")})`;
const rect = ([x0, y0, x1, y1]: readonly number[], fill: string, extra = "") =>
  `<rect x="${x0}" y="${y0}" width="${x1! - x0!}" height="${y1! - y0!}" fill="${fill}" ${extra}/>`;

export function roomSvg(): string {
  const { width, height, floorTop, door, windows } = ROOM;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" shape-rendering="crispEdges">
  ${rect([0, 0, width, floorTop], rgb("wall"))}
  ${rect([0, floorTop, width, height], rgb("floor"))}
  ${rect(door, rgb("door"))}
  ${windows.map((w) => rect(w, rgb("window"))).join("\n  ")}
</svg>`;
}

/** Deterministic pseudo-random numbers (mulberry32), so the photo-like noise is the same every run. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The portrait as displayed: 400x600, a person and a lamp on a noisy gradient. */
export const PORTRAIT = {
  width: 400,
  height: 600,
  /** Ellipse centre and radii of the person. */
  person: { cx: 150, cy: 265, rx: 33, ry: 160 },
  lamp: [320, 120, 380, 200],
} as const;

function portraitPixels(): Buffer {
  const { width, height, person, lamp } = PORTRAIT;
  const next = random(6);
  const px = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const t = y / (height - 1);
      let c = [150 - 30 * t, 160 - 30 * t, 175 - 25 * t];
      const e = ((x - person.cx) / person.rx) ** 2 + ((y - person.cy) / person.ry) ** 2;
      if (e <= 1) {
        const shade = 1 - 0.08 * e;
        c = PALETTE.person.map((v) => v * shade);
      } else if (x >= lamp[0] && x < lamp[2] && y >= lamp[1] && y < lamp[3]) {
        c = [...PALETTE.lamp];
      }
      for (let k = 0; k < 3; k++) {
        const noisy = c[k]! + (next() - 0.5) * 16;
        px[(y * width + x) * 3 + k] = Math.max(0, Math.min(255, Math.round(noisy)));
      }
    }
  }
  return px;
}

/** The alpha fixture: opaque wall, a door rectangle at alpha 0, a window rectangle at alpha 128. */
export const ALPHA = { width: 320, height: 240, door: [20, 60, 80, 170], window: [250, 40, 310, 120] } as const;

function alphaPixels(): Buffer {
  const { width, height, door, window } = ALPHA;
  const px = Buffer.alloc(width * height * 4);
  const inside = (r: readonly number[], x: number, y: number) => x >= r[0]! && x < r[2]! && y >= r[1]! && y < r[3]!;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const [c, a] = inside(door, x, y) ? [PALETTE.door, 0] : inside(window, x, y) ? [PALETTE.window, 128] : [PALETTE.wall, 255];
      px.set([...c, a], (y * width + x) * 4);
    }
  }
  return px;
}

/** The grayscale fixture: dark grey with a near-white rectangle (the "ceiling" colour). */
export const GRAY = { width: 300, height: 200, value: 60, patch: [180, 40, 280, 160], patchValue: 250 } as const;

async function grayJpeg(): Promise<Buffer> {
  const { width, height, value, patch, patchValue } = GRAY;
  const px = Buffer.alloc(width * height, value);
  for (let y = patch[1]; y < patch[3]; y++) px.fill(patchValue, y * width + patch[0], y * width + patch[2]);
  return sharp(px, { raw: { width, height, channels: 1 } }).toColourspace("b-w").jpeg({ quality: 95 }).toBuffer();
}

export async function generateFixtures(root = findProjectRoot()): Promise<void> {
  const dir = join(root, FIXTURES_DIR);
  mkdirSync(dir, { recursive: true });
  const room = sharp(Buffer.from(roomSvg()));
  const roomJpeg = await room.clone().jpeg({ quality: 92, chromaSubsampling: "4:4:4" }).toBuffer();
  const files: [string, Buffer][] = [
    ["room.jpg", roomJpeg],
    ["room.png", await room.clone().png().toBuffer()],
    [
      "portrait-exif6.jpg",
      // Stored turned a quarter anticlockwise; orientation 6 tells viewers to turn it back clockwise.
      await sharp(await sharp(portraitPixels(), { raw: { width: PORTRAIT.width, height: PORTRAIT.height, channels: 3 } }).rotate(270).toBuffer(), {
        raw: { width: PORTRAIT.height, height: PORTRAIT.width, channels: 3 },
      })
        .jpeg({ quality: 90 })
        .withMetadata({ orientation: 6 })
        .toBuffer(),
    ],
    ["alpha.png", await sharp(alphaPixels(), { raw: { width: ALPHA.width, height: ALPHA.height, channels: 4 } }).png().toBuffer()],
    ["gray.jpg", await grayJpeg()],
  ];
  for (const [name, bytes] of files) {
    writeFileSync(join(dir, name), bytes);
    process.stderr.write(`wrote ${join(FIXTURES_DIR, name)} (${bytes.length} bytes)\n`);
  }
  const testInput = {
    input: { image_base64: roomJpeg.toString("base64"), concepts: ["wall", "door", "window"], confidence_threshold: 0.5 },
  };
  writeFileSync(join(root, "test_input.json"), JSON.stringify(testInput, null, 2) + "\n");
  process.stderr.write("wrote test_input.json\n");
}

if (isMainModule(import.meta.url)) await generateFixtures();
