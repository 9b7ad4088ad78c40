import { describe, expect, it } from "vitest";
import { InvalidInputError, parseInput } from "../../handler/input.js";

const limits = { maxConcepts: 32, maxImageBytes: 1000 };
const ok = { image_url: "https://images.example.com/room.jpg", concepts: ["wall"] };

function message(input: unknown, l = limits): string {
  try {
    parseInput(input, l);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidInputError);
    return (err as Error).message;
  }
  throw new Error("expected parseInput to fail");
}

describe("parseInput", () => {
  it("accepts the contract's example with the default threshold 0.5 and ignores unknown fields", () => {
    const req = parseInput({ ...ok, concepts: ["wall", "door", "window"], extra: { anything: true } }, limits);
    expect(req.image).toEqual({ kind: "url", url: new URL(ok.image_url) });
    expect(req.concepts).toEqual(["wall", "door", "window"]);
    expect(req.threshold).toBe(0.5);
    expect(parseInput({ ...ok, confidence_threshold: 0 }, limits).threshold).toBe(0);
    expect(parseInput({ ...ok, confidence_threshold: 1 }, limits).threshold).toBe(1);
  });

  it("refuses an input that is missing or not an object", () => {
    expect(message(undefined)).toBe("Invalid input: input must be an object (got nothing)");
    expect(message("wall")).toBe('Invalid input: input must be an object (got "wall")');
    expect(message([1, 2])).toBe("Invalid input: input must be an object (got an array of 2)");
    expect(message(null)).toBe("Invalid input: input must be an object (got null)");
  });

  it("wants exactly one of image_url and image_base64", () => {
    expect(message({ concepts: ["wall"] })).toBe("Invalid input: image_url or image_base64 is required (got neither)");
    expect(message({ ...ok, image_base64: "AAAA" })).toBe("Invalid input: image_url and image_base64 must not both be set; send exactly one (got both)");
  });

  it("checks image_url's type, form and scheme without echoing its query string", () => {
    expect(message({ ...ok, image_url: 42 })).toBe("Invalid input: image_url must be a string (got 42)");
    expect(message({ ...ok, image_url: "" })).toBe('Invalid input: image_url must not be empty (got "")');
    expect(message({ ...ok, image_url: "not a url?token=secret" })).toBe("Invalid input: image_url is not an absolute URL (got a string of 22 characters)");
    expect(message({ ...ok, image_url: "ftp://example.com/a.jpg" })).toBe("Invalid input: image_url must use http or https (got ftp:)");
    expect(message({ ...ok, image_url: "file:///etc/passwd" })).toBe("Invalid input: image_url must use http or https (got file:)");
    const creds = message({ ...ok, image_url: "https://user:pw@example.com/a.jpg?sig=secret" });
    expect(creds).toBe("Invalid input: image_url must not carry credentials (got https://example.com/a.jpg?[REDACTED] with user info)");
    expect(creds).not.toContain("secret");
  });

  it("decodes raw base64 and data URLs, standard and URL-safe, with line breaks", () => {
    const bytes = Buffer.from([0xff, 0xd8, 0xff, 0xfb, 0x10]);
    const b64 = bytes.toString("base64");
    for (const value of [b64, `data:image/jpeg;base64,${b64}`, `${b64.slice(0, 4)}\n${b64.slice(4)}`, bytes.toString("base64url")]) {
      const req = parseInput({ image_base64: value, concepts: ["wall"] }, limits);
      expect(req.image).toEqual({ kind: "base64", bytes });
    }
  });

  it("refuses invalid base64 with the offending character, and data URLs that are not images", () => {
    expect(message({ image_base64: "abc$def", concepts: ["wall"] })).toBe('Invalid input: image_base64 is not valid base64 (got the character "$" at position 3)');
    expect(message({ image_base64: "abcde", concepts: ["wall"] })).toBe("Invalid input: image_base64 is not valid base64 (got a malformed length or padding)");
    expect(message({ image_base64: "", concepts: ["wall"] })).toBe("Invalid input: image_base64 must not be empty (got no data)");
    expect(message({ image_base64: "data:text/html;base64,PGI+", concepts: ["wall"] })).toBe('Invalid input: image_base64 data URL must have an image/* type (got "text/html")');
    expect(message({ image_base64: 7, concepts: ["wall"] })).toBe("Invalid input: image_base64 must be a string (got 7)");
  });

  it("applies the byte cap to image_base64 before and after decoding", () => {
    expect(message({ image_base64: "A".repeat(4000), concepts: ["wall"] })).toBe(
      "Invalid input: image_base64 decodes to about 3000 bytes, over the limit of 1000 bytes (SAM3_MAX_IMAGE_BYTES)",
    );
    expect(message({ image_base64: Buffer.alloc(1001).toString("base64"), concepts: ["wall"] })).toBe(
      "Invalid input: image_base64 decodes to 1001 bytes, over the limit of 1000 bytes (SAM3_MAX_IMAGE_BYTES)",
    );
  });

  it("checks concepts: array, 1..max items, non-empty strings of at most 200 characters; Unicode is fine", () => {
    expect(message({ image_url: ok.image_url })).toBe("Invalid input: concepts must be an array of strings (got nothing)");
    expect(message({ ...ok, concepts: "wall" })).toBe('Invalid input: concepts must be an array of strings (got "wall")');
    expect(message({ ...ok, concepts: [] })).toBe("Invalid input: concepts must have 1 to 32 items (SAM3_MAX_CONCEPTS) (got 0)");
    expect(message({ ...ok, concepts: new Array(33).fill("wall") })).toBe("Invalid input: concepts must have 1 to 32 items (SAM3_MAX_CONCEPTS) (got 33)");
    expect(message({ ...ok, concepts: ["wall", 3] })).toBe("Invalid input: concepts[1] must be a string (got 3)");
    expect(message({ ...ok, concepts: ["wall", "  "] })).toBe('Invalid input: concepts[1] must not be empty or blank (got "  ")');
    expect(message({ ...ok, concepts: ["x".repeat(201)] })).toBe("Invalid input: concepts[0] must be at most 200 characters (got 201)");
    expect(parseInput({ ...ok, concepts: ["벽", "porte-fenêtre", "🚪"] }, limits).concepts).toEqual(["벽", "porte-fenêtre", "🚪"]);
    expect(parseInput({ ...ok, concepts: ["🚪".repeat(200)] }, limits).concepts).toHaveLength(1);
  });

  it("reads the opt-in extensions with defaults that keep the original response", () => {
    expect(parseInput(ok, limits)).toMatchObject({ maskFormat: "png", returnOverlay: false });
    expect(parseInput(ok, limits)).not.toHaveProperty("maxInstances");
    expect(parseInput({ ...ok, mask_format: "rle", max_instances: 5, return_overlay: true }, limits)).toMatchObject({
      maskFormat: "rle",
      maxInstances: 5,
      returnOverlay: true,
    });
    expect(message({ ...ok, mask_format: "jpeg" })).toBe('Invalid input: mask_format must be "png" or "rle" (got "jpeg")');
    expect(message({ ...ok, max_instances: 0 })).toBe("Invalid input: max_instances must be an integer from 1 to 200 (got 0)");
    expect(message({ ...ok, max_instances: 2.5 })).toBe("Invalid input: max_instances must be an integer from 1 to 200 (got 2.5)");
    expect(message({ ...ok, return_overlay: "yes" })).toBe('Invalid input: return_overlay must be true or false (got "yes")');
  });

  it("checks confidence_threshold: a finite number in [0, 1]", () => {
    for (const [value, got] of [
      [1.5, "1.5"],
      [-0.1, "-0.1"],
      ["0.3", '"0.3"'],
      [Number.NaN, "NaN"],
      [true, "boolean"],
    ] as const) {
      expect(message({ ...ok, confidence_threshold: value })).toBe(`Invalid input: confidence_threshold must be a number from 0 to 1 (got ${got})`);
    }
  });
});
