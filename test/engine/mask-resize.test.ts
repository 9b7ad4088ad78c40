import { describe, expect, it } from "vitest";
import { axisTable, resizeMaskInto, resizeMaskReference, resizePlan } from "../../engine/mask-resize.js";

function fast(plane: Float32Array | Float64Array, width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height);
  resizeMaskInto(plane, resizePlan(width, height, 288), out, 0, width);
  return out;
}

/** Deterministic smooth-ish logits with sign changes everywhere: blobs plus ripples. */
function randomPlane(seed: number): Float32Array {
  const plane = new Float32Array(288 * 288);
  let a = seed;
  const next = () => ((a = (a * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff) * 2 - 1;
  const blobs = Array.from({ length: 6 }, () => [next() * 144 + 144, next() * 144 + 144, 20 + Math.abs(next()) * 60]);
  for (let y = 0; y < 288; y++) {
    for (let x = 0; x < 288; x++) {
      let v = -3 + Math.sin(x / 7) * 0.5;
      for (const [cx, cy, r] of blobs) v += 6 * Math.exp(-((x - cx!) ** 2 + (y - cy!) ** 2) / (r! * r!));
      plane[y * 288 + x] = v + next() * 0.2;
    }
  }
  return plane;
}

describe("axisTable (half-pixel centres, clamped at 0)", () => {
  it("enlarging 288 -> 576: s = (o + 0.5) / 2 - 0.5", () => {
    const t = axisTable(576, 288);
    expect([t.i0[0], t.i1[0], t.w1[0]]).toEqual([0, 1, 0]); // s = -0.25, clamped to 0
    expect([t.i0[1], t.i1[1], t.w1[1]]).toEqual([0, 1, 0.25]);
    expect([t.i0[2], t.i1[2], t.w1[2]]).toEqual([0, 1, 0.75]);
    expect([t.i0[3], t.i1[3], t.w1[3]]).toEqual([1, 2, 0.25]);
    expect([t.i0[575], t.i1[575], t.w1[575]]).toEqual([287, 287, 0.25]); // s = 287.25: the last source repeats
  });

  it("shrinking 288 -> 144: every output is the mean of two sources", () => {
    const t = axisTable(144, 288);
    for (let o = 0; o < 144; o++) expect([t.i0[o], t.i1[o], t.w1[o]]).toEqual([2 * o, 2 * o + 1, 0.5]);
  });

  it.each([533, 1200])("non-integer scale 288 -> %i follows s = (o + 0.5) * 288 / n - 0.5", (n) => {
    const t = axisTable(n, 288);
    for (const o of [0, 1, 2, 100, n - 2, n - 1]) {
      const s = Math.max(0, (o + 0.5) * (288 / n) - 0.5);
      expect(t.i0[o]).toBe(Math.min(Math.floor(s), 287));
      expect(t.i1[o]).toBe(Math.min(Math.floor(s) + 1, 287));
      expect(t.w1[o]).toBeCloseTo(s - Math.floor(s), 12);
    }
    // 288 -> 533, o = 1: s = 1.5 * 0.540338 - 0.5 = 0.310507
    if (n === 533) expect(t.w1[1]).toBeCloseTo(0.3105066, 6);
  });
});

describe("mask resize and cut", () => {
  it("matches hand-computed values at the corner when enlarging 2x", () => {
    // One positive source pixel at (0, 0), -1 elsewhere.
    const plane = new Float32Array(288 * 288).fill(-1);
    plane[0] = 1;
    const out = fast(plane, 576, 576);
    const at = (x: number, y: number) => out[y * 576 + x];
    expect(at(0, 0)).toBe(255); // the source pixel itself
    expect(at(1, 0)).toBe(255); // lx = .25: .75 - .25 = .5
    expect(at(2, 0)).toBe(0); // lx = .75: .25 - .75 = -.5
    expect(at(1, 1)).toBe(255); // .75 * (.75 - .25) + .25 * -1 = .125
    expect(at(2, 1)).toBe(0); // .75 * (.25 - .75) + .25 * -1 = -.625
    expect(at(2, 2)).toBe(0); // .25 * (.25 - .75) + .75 * -1 = -.875
    expect(out.reduce((n, v) => n + (v ? 1 : 0), 0)).toBe(4);
  });

  it("keeps the edge values when the source is constant (clamping at both ends)", () => {
    const out = fast(new Float32Array(288 * 288).fill(0.5), 1200, 533);
    expect(out.every((v) => v === 255)).toBe(true);
  });

  it.each([
    [800, 533],
    [533, 800],
    [1200, 900],
    [100, 77],
    [288, 288],
    [1, 1],
    [4000, 3000],
  ])("equals the per-pixel formula exactly at %ix%i", (w, h) => {
    const plane = randomPlane(w * 31 + h);
    expect(Buffer.compare(fast(plane, w, h), resizeMaskReference(plane, 288, w, h))).toBe(0);
  });

  it("equals the per-pixel formula where logits are exactly zero or tiny", () => {
    const plane = new Float64Array(288 * 288);
    for (let i = 0; i < plane.length; i++) plane[i] = i % 5 === 0 ? 0 : i % 7 === 0 ? 1e-12 : i % 3 === 0 ? -1e-12 : ((i % 11) - 5) * 1e-10;
    for (const [w, h] of [
      [900, 700],
      [300, 200],
    ] as const) {
      expect(Buffer.compare(fast(plane, w, h), resizeMaskReference(plane, 288, w, h))).toBe(0);
    }
  });

  it("equals the per-pixel formula for objects small and large, at the borders, and for empty and full planes", () => {
    const planes: [string, Float32Array][] = [];
    const blob = (cx: number, cy: number, r: number, outside = -10) => {
      const p = new Float32Array(288 * 288);
      for (let y = 0; y < 288; y++) for (let x = 0; x < 288; x++) p[y * 288 + x] = Math.hypot(x - cx, y - cy) < r ? 5 - Math.hypot(x - cx, y - cy) / 4 : outside;
      return p;
    };
    planes.push(["small blob", blob(100, 60, 6)], ["corner blob", blob(287, 287, 20)], ["origin blob", blob(0, 0, 9)], ["wide blob", blob(144, 144, 200)]);
    planes.push(["all negative", new Float32Array(288 * 288).fill(-10)], ["all positive", new Float32Array(288 * 288).fill(3)]);
    const edge = new Float32Array(288 * 288).fill(-10);
    edge[5 * 288 + 7] = 0; // exactly zero: inside the box, and 0 is not > 0
    edge[200 * 288 + 250] = 1e-12;
    planes.push(["zeros at the box edge", edge]);
    for (const [name, plane] of planes) {
      for (const [w, h] of [
        [800, 533],
        [97, 61],
        [1500, 1100],
      ] as const) {
        expect(Buffer.compare(fast(plane, w, h), resizeMaskReference(plane, 288, w, h)), `${name} at ${w}x${h}`).toBe(0);
      }
    }
  });

  it("writes into a strided buffer (PNG scanlines) without touching the filter bytes", () => {
    const w = 50;
    const h = 40;
    const out = new Uint8Array(h * (w + 1)).fill(7);
    resizeMaskInto(new Float32Array(288 * 288).fill(1), resizePlan(w, h, 288), out, 1, w + 1);
    for (let y = 0; y < h; y++) {
      expect(out[y * (w + 1)]).toBe(7);
      expect(out.subarray(y * (w + 1) + 1, (y + 1) * (w + 1)).every((v) => v === 255)).toBe(true);
    }
  });
});
