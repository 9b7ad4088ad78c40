/**
 * The overlay picture for people to look at (return_overlay): the image with each concept's masks
 * tinted in the concept's colour, mask outlines in full colour, and a small legend, as a JPEG.
 * Masks are painted as they are rasterized, so no extra full-size mask is kept.
 */
import sharp from "sharp";

/** Distinct colours (Tableau 10), one per concept in request order. */
export const OVERLAY_COLOURS: readonly (readonly [number, number, number])[] = [
  [31, 119, 180],
  [255, 127, 14],
  [44, 160, 44],
  [214, 39, 40],
  [148, 103, 189],
  [140, 86, 75],
  [227, 119, 194],
  [127, 127, 127],
  [188, 189, 34],
  [23, 190, 207],
];

/** Weight of the concept colour inside a mask. */
export const TINT_ALPHA = 0.45;

export interface LegendEntry {
  readonly label: string;
  readonly colour: readonly [number, number, number];
  readonly count: number;
}

const escapeXml = (text: string) => text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);

export class OverlayCanvas {
  private readonly pixels: Uint8Array;
  /** Outline thickness grows with the image so it stays visible on large photos. */
  private readonly outline: number;

  /** Paints into `rgb` itself: the caller hands the decoded image over. */
  constructor(
    rgb: Uint8Array,
    readonly width: number,
    readonly height: number,
  ) {
    this.pixels = rgb;
    this.outline = Math.max(2, Math.round(Math.min(width, height) / 300));
  }

  /** Tints one binary 0/255 mask (`stride` bytes per row from `offset`). */
  paint(mask: Uint8Array, offset: number, stride: number, colour: readonly [number, number, number]): void {
    const { width, height, pixels, outline } = this;
    const [r, g, b] = colour;
    const inside = (x: number, y: number) => x >= 0 && y >= 0 && x < width && y < height && mask[offset + y * stride + x] === 255;
    for (let y = 0; y < height; y++) {
      const row = offset + y * stride;
      // Rows outside the mask are skipped with a native search; masks are mostly background.
      const first = mask.indexOf(255, row);
      if (first < 0 || first >= row + width) continue;
      const last = mask.subarray(row, row + width).lastIndexOf(255) + row;
      for (let x = first - row; x <= last - row; x++) {
        if (mask[row + x] !== 255) continue;
        let edge = false;
        for (let d = 1; d <= outline && !edge; d++) edge = !inside(x - d, y) || !inside(x + d, y) || !inside(x, y - d) || !inside(x, y + d);
        const p = (y * width + x) * 3;
        if (edge) {
          pixels[p] = r;
          pixels[p + 1] = g;
          pixels[p + 2] = b;
        } else {
          pixels[p] = Math.round(pixels[p]! * (1 - TINT_ALPHA) + r * TINT_ALPHA);
          pixels[p + 1] = Math.round(pixels[p + 1]! * (1 - TINT_ALPHA) + g * TINT_ALPHA);
          pixels[p + 2] = Math.round(pixels[p + 2]! * (1 - TINT_ALPHA) + b * TINT_ALPHA);
        }
      }
    }
  }

  /** The JPEG with the legend in the top-left corner, base64. */
  async toJpegBase64(legend: readonly LegendEntry[]): Promise<string> {
    const { width, height } = this;
    let image = sharp(this.pixels, { raw: { width, height, channels: 3 } });
    if (legend.length > 0) image = image.composite([{ input: this.legendSvg(legend), top: 0, left: 0 }]);
    // 4:4:4 keeps the thin coloured outlines from being smeared by chroma subsampling.
    const jpeg = await image.jpeg({ quality: 85, chromaSubsampling: "4:4:4" }).toBuffer();
    return jpeg.toString("base64");
  }

  private legendSvg(legend: readonly LegendEntry[]): Buffer {
    const font = Math.max(10, Math.round(Math.min(this.width, this.height) / 40));
    const line = Math.round(font * 1.4);
    const pad = Math.round(font / 2);
    const lines = legend.map((e) => `${e.label} (${e.count})`);
    // Legend size from a generous per-character width; clipped to the image.
    const w = Math.min(this.width, pad * 3 + font + Math.max(...lines.map((l) => l.length)) * Math.ceil(font * 0.62));
    const h = Math.min(this.height, pad * 2 + line * legend.length);
    const rows = legend
      .map((e, i) => {
        const y = pad + i * line;
        const fill = `rgb(${e.colour.join(",")})`;
        return `<rect x="${pad}" y="${y + (line - font) / 2}" width="${font}" height="${font}" fill="${fill}"/><text x="${pad * 2 + font}" y="${y + line / 2}" dominant-baseline="central" font-family="DejaVu Sans, sans-serif" font-size="${font}" fill="white">${escapeXml(lines[i]!)}</text>`;
      })
      .join("");
    return Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}"><rect width="${w}" height="${h}" fill="black" fill-opacity="0.6"/>${rows}</svg>`);
  }
}
