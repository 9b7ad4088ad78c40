/**
 * The design of the tiny SAM3-contract model, as data that the generator, the fixtures and the
 * tests share. Nothing here is learned: every output follows from these numbers.
 *
 * - A concept word means a colour. The text encoder turns a colour word into a feature vector
 *   carrying that colour (channels 0-2, in the model's -1..1 pixel space) and a weight of 1
 *   (channel 3); every other token, BOS, EOS and padding included, carries weight 0.
 * - The decoder averages the colours of the valid (text_mask) tokens with weight 1, and marks a
 *   pixel as matching when its colour lies within MATCH_RADIUS of that colour.
 * - Each query owns a fixed rectangle of the 288x288 mask grid. Queries 0-11 own the cells of a
 *   coarse 4x3 grid (COARSE_*_EDGES), queries 12-155 the cells of a fine 12x12 grid, the rest own
 *   nothing. A query's mask logits are the match logits inside its rectangle and -10 outside.
 * - A query is "present" when at least 2 % of its rectangle matches; its class logit is then
 *   logit(QUERY_SCORES[q]), otherwise -8. The presence logit is +5 when the colour appears
 *   anywhere at 72x72 and -5 otherwise, so score = QUERY_SCORES[q] * sigmoid(5) for a found object.
 */

/** sRGB colours of the concept words. Pairwise distances exceed 2 * MATCH_RADIUS in model space. */
export const PALETTE = {
  wall: [225, 205, 160],
  door: [120, 55, 25],
  window: [110, 185, 245],
  floor: [40, 40, 110],
  ceiling: [250, 250, 250],
  sofa: [60, 140, 60],
  lamp: [250, 200, 30],
  person: [210, 80, 120],
} as const satisfies Record<string, readonly [number, number, number]>;

export type PaletteName = keyof typeof PALETTE;

/** Model-space distance (pixels scaled to -1..1) within which a pixel matches a colour. */
export const MATCH_RADIUS = 0.4;
/** Slope of the mask logit in squared distance; logits are clipped to +-10. */
export const MASK_LOGIT_GAIN = 60;
/** Fraction of a query's rectangle that must match for the query to be fully present. */
export const PRESENT_FRACTION = 0.02;
export const ABSENT_LOGIT = -8;
export const PRESENCE_LOGIT = 5;

/** Words that carry a colour, with the token id the tiny vocabulary gives them. */
export const COLOUR_WORDS: readonly { word: string; colour: PaletteName; id: number }[] = [
  { word: "wall", colour: "wall", id: 49001 },
  { word: "walls", colour: "wall", id: 49002 },
  { word: "door", colour: "door", id: 49003 },
  { word: "doors", colour: "door", id: 49004 },
  { word: "window", colour: "window", id: 49005 },
  { word: "windows", colour: "window", id: 49006 },
  { word: "floor", colour: "floor", id: 49007 },
  { word: "ceiling", colour: "ceiling", id: 49008 },
  { word: "sofa", colour: "sofa", id: 49009 },
  { word: "lamp", colour: "lamp", id: 49010 },
  { word: "person", colour: "person", id: 49011 },
];

/**
 * Plain words with their real CLIP ids, so that the well-known CLIP test vectors
 * ("a photo of a cat", "Hello, world!") come out of the tiny tokenizer unchanged.
 */
export const PLAIN_WORDS: readonly { word: string; id: number }[] = [
  { word: "photo", id: 1125 },
  { word: "of", id: 539 },
  { word: "cat", id: 2368 },
  { word: "hello", id: 3306 },
  { word: "world", id: 1002 },
];

/** Ids for intermediate merge results start here (far from every fixed id above). */
export const MERGE_ID_BASE = 48000;

/** Coarse grid edges in 288-space; queries 0-11 are its cells, row-major. */
export const COARSE_COL_EDGES = [0, 72, 144, 216, 288] as const;
export const COARSE_ROW_EDGES = [0, 36, 216, 288] as const;
/** Fine grid: FINE_CELLS x FINE_CELLS cells of 288 / FINE_CELLS pixels; queries 12-155. */
export const FINE_CELLS = 12;
export const FINE_QUERY_BASE = 12;
export const FIRST_EMPTY_QUERY = FINE_QUERY_BASE + FINE_CELLS * FINE_CELLS;

/** Scores (before presence) of the coarse queries, row-major: spread so 0.3/0.5/0.7 differ. */
export const COARSE_SCORES = [
  0.93, 0.64, 0.47, 0.81, // upper band (wall)
  0.91, 0.55, 0.86, 0.62, // main band (door, wall, window, window)
  0.38, 0.72, 0.26, 0.59, // floor band
] as const;

/** Fine queries score low (0.08-0.18), like the many weak duplicates a real model proposes. */
export function fineScore(index: number): number {
  return 0.08 + ((index * 7) % 11) / 100;
}

export interface QueryRegion {
  /** Rectangle in 288-space: [x0, y0, x1, y1), empty when x0 === x1. */
  readonly rect: readonly [number, number, number, number];
  /** Score when the region holds the concept. */
  readonly score: number;
}

export function queryRegions(): QueryRegion[] {
  const regions: QueryRegion[] = [];
  const rows = COARSE_ROW_EDGES.length - 1;
  const cols = COARSE_COL_EDGES.length - 1;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      regions.push({
        rect: [COARSE_COL_EDGES[c]!, COARSE_ROW_EDGES[r]!, COARSE_COL_EDGES[c + 1]!, COARSE_ROW_EDGES[r + 1]!],
        score: COARSE_SCORES[r * cols + c]!,
      });
    }
  }
  const cell = 288 / FINE_CELLS;
  for (let r = 0; r < FINE_CELLS; r++) {
    for (let c = 0; c < FINE_CELLS; c++) {
      regions.push({ rect: [c * cell, r * cell, (c + 1) * cell, (r + 1) * cell], score: fineScore(r * FINE_CELLS + c) });
    }
  }
  while (regions.length < 200) regions.push({ rect: [0, 0, 0, 0], score: 0.01 });
  return regions;
}

/** sRGB 0..255 to the model's -1..1 space (the vision encoder's input normalisation). */
export function toModelSpace(rgb: readonly number[]): [number, number, number] {
  return [rgb[0]! / 127.5 - 1, rgb[1]! / 127.5 - 1, rgb[2]! / 127.5 - 1];
}

/**
 * The bundled room fixture (800x533), laid out so each object sits inside one coarse cell.
 * Rectangles are [x0, y0, x1, y1) in pixels; walls fill y < 400 except the door and windows.
 */
export const ROOM = {
  width: 800,
  height: 533,
  floorTop: 400,
  door: [60, 140, 150, 390],
  windows: [
    [440, 130, 560, 260],
    [640, 130, 760, 260],
  ],
} as const;
