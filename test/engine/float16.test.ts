import { describe, expect, it } from "vitest";
import { float32ToHalf, halfToFloat32, toHalf } from "../../engine/float16.js";

describe("float16 conversion", () => {
  it("encodes well-known values", () => {
    expect(toHalf(1)).toBe(0x3c00);
    expect(toHalf(-2)).toBe(0xc000);
    expect(toHalf(0.5)).toBe(0x3800);
    expect(toHalf(65504)).toBe(0x7bff);
    expect(toHalf(0.1)).toBe(0x2e66);
    expect(toHalf(0)).toBe(0);
    expect(toHalf(-0)).toBe(0x8000);
    expect(toHalf(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(toHalf(Infinity)).toBe(0x7c00);
    expect(toHalf(1e6)).toBe(0x7c00); // overflow
    expect(toHalf(NaN) & 0x7c00).toBe(0x7c00);
  });

  it("rounds to nearest, ties to even", () => {
    // 1 + 2^-11 lies halfway between 1 and 1 + 2^-10: ties go to the even mantissa (1).
    expect(toHalf(1 + 2 ** -11)).toBe(0x3c00);
    // 1 + 3 * 2^-11 lies halfway between 1 + 2^-10 (odd) and 1 + 2^-9 (even).
    expect(toHalf(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(toHalf(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01);
  });

  it("decodes every half exactly and round-trips", () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const floats = halfToFloat32(all);
    expect(floats[0x3c00]).toBe(1);
    expect(floats[0xc000]).toBe(-2);
    expect(floats[0x0001]).toBe(2 ** -24);
    expect(floats[0x7c00]).toBe(Infinity);
    const finite = all.filter((h) => (h & 0x7c00) !== 0x7c00);
    const back = float32ToHalf(halfToFloat32(finite));
    expect(Array.from(back)).toEqual(Array.from(finite));
  });
});
