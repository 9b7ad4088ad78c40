import { describe, expect, it } from "vitest";
import { pixelBox, selectInstances, sigmoid } from "../../engine/postprocess.js";

const logitOf = (p: number) => Math.log(p / (1 - p));

describe("selectInstances", () => {
  it("scores as sigmoid(class) * sigmoid(presence)", () => {
    const [only] = selectInstances([logitOf(0.8)], logitOf(0.5), 0);
    expect(only!.score).toBeCloseTo(0.4, 12);
    expect(sigmoid(0)).toBe(0.5);
  });

  it("drops a score exactly equal to the threshold (strict >)", () => {
    // sigmoid(40) is exactly 1 in float64, and sigmoid(0) exactly 0.5.
    expect(sigmoid(40)).toBe(1);
    expect(selectInstances([0], 40, 0.5)).toEqual([]);
    expect(selectInstances([0], 40, 0.4999999)).toEqual([{ query: 0, score: 0.5 }]);
  });

  it("sorts by score, highest first, ties by query index", () => {
    const logits = [logitOf(0.6), logitOf(0.9), logitOf(0.2), logitOf(0.9), logitOf(0.75)];
    const kept = selectInstances(logits, 40, 0.3);
    expect(kept.map((k) => k.query)).toEqual([1, 3, 4, 0]);
    expect(kept.map((k) => k.score)).toEqual([...kept.map((k) => k.score)].sort((a, b) => b - a));
  });

  it("caps the count after sorting", () => {
    const logits = [logitOf(0.6), logitOf(0.9), logitOf(0.7)];
    expect(selectInstances(logits, 40, 0, 2).map((k) => k.query)).toEqual([1, 2]);
  });

  it("lets the presence factor suppress every query", () => {
    expect(selectInstances(new Array(200).fill(logitOf(0.95)), -5, 0.3)).toEqual([]);
  });
});

describe("pixelBox", () => {
  it("scales normalised x1, y1, x2, y2 by width and height", () => {
    expect(pixelBox([0.25, 0.5, 0.75, 1], 0, 800, 533)).toEqual([200, 266.5, 600, 533]);
  });

  it("clips to the image and rounds to 0.01 px", () => {
    expect(pixelBox([0, 0, 0, 0, -0.1, 0.2, 1.3, 0.50001], 1, 800, 533)).toEqual([0, 106.6, 800, 266.51]);
  });
});
