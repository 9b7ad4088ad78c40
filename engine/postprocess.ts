/**
 * Scores, threshold and boxes (sam3-model.md sections 5 and 6), as pure functions.
 */

export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

export interface Instance {
  /** Query index 0..199 in the decoder's outputs. */
  readonly query: number;
  readonly score: number;
}

/**
 * score_q = sigmoid(pred_logit_q) * sigmoid(presence_logit), computed in float64; kept when
 * strictly greater than the threshold; sorted highest first (ties by query index, so the order is
 * stable); capped at `maxInstances` before any mask is resized.
 */
export function selectInstances(
  logits: ArrayLike<number>,
  presenceLogit: number,
  threshold: number,
  maxInstances: number = Number.POSITIVE_INFINITY,
): Instance[] {
  const presence = sigmoid(presenceLogit);
  const kept: Instance[] = [];
  for (let q = 0; q < logits.length; q++) {
    const score = sigmoid(logits[q]!) * presence;
    if (score > threshold) kept.push({ query: q, score });
  }
  kept.sort((a, b) => b.score - a.score || a.query - b.query);
  return kept.length > maxInstances ? kept.slice(0, maxInstances) : kept;
}

export type Box = [x1: number, y1: number, x2: number, y2: number];

const clamp = (v: number, hi: number) => (v < 0 ? 0 : v > hi ? hi : v);
const round2 = (v: number) => Math.round(v * 100) / 100;

/** Normalised x1, y1, x2, y2 of query `q` to pixels of the oriented image, clipped to it, 0.01 px. */
export function pixelBox(boxes: ArrayLike<number>, q: number, width: number, height: number): Box {
  const o = q * 4;
  return [
    round2(clamp(boxes[o]! * width, width)),
    round2(clamp(boxes[o + 1]! * height, height)),
    round2(clamp(boxes[o + 2]! * width, width)),
    round2(clamp(boxes[o + 3]! * height, height)),
  ];
}
