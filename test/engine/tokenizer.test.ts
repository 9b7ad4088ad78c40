import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ClipTokenizer } from "../../engine/tokenizer.js";
import { findProjectRoot } from "../../engine/module-paths.js";
import { buildTokenizerJson } from "../../models/tiny-generator/tokenizer-json.js";

const tokenizer = await ClipTokenizer.fromFile(join(findProjectRoot(), "models/tiny/tokenizer.json"));

function padded(ids: number[]): { ids: number[]; attentionMask: number[] } {
  return {
    ids: [...ids, ...new Array(32 - ids.length).fill(49407)],
    attentionMask: [...ids.map(() => 1), ...new Array(32 - ids.length).fill(0)],
  };
}

describe("ClipTokenizer", () => {
  it("frames a one-word concept as BOS, word, EOS, padded with EOS to 32", () => {
    expect(tokenizer.encode("wall")).toEqual(padded([49406, 49001, 49407]));
  });

  it("reproduces the well-known CLIP vectors (multi-word, mixed case, punctuation)", () => {
    expect(tokenizer.encode("a photo of a cat")).toEqual(padded([49406, 320, 1125, 539, 320, 2368, 49407]));
    expect(tokenizer.encode("A PHOTO of  a Cat!")).toEqual(padded([49406, 320, 1125, 539, 320, 2368, 256, 49407]));
    expect(tokenizer.encode("Hello, world!")).toEqual(padded([49406, 3306, 267, 1002, 256, 49407]));
  });

  it("lower-cases before BPE", () => {
    expect(tokenizer.encode("WaLL")).toEqual(tokenizer.encode("wall"));
    expect(tokenizer.encode("  Door \t")).toEqual(tokenizer.encode("door"));
  });

  it("truncates an over-long concept to BOS + 30 ids + EOS, keeping EOS last", () => {
    const long = Array.from({ length: 40 }, () => "wall").join(" ");
    const { ids, attentionMask } = tokenizer.encode(long);
    expect(ids).toHaveLength(32);
    expect(ids[0]).toBe(49406);
    expect(ids.slice(1, 31)).toEqual(new Array(30).fill(49001));
    expect(ids[31]).toBe(49407);
    expect(attentionMask).toEqual(new Array(32).fill(1));
  });

  it("tokenises any Unicode text through byte-level pieces", () => {
    const { ids, attentionMask } = tokenizer.encode("벽");
    expect(ids[0]).toBe(49406);
    expect(attentionMask.filter((m) => m === 1).length).toBe(5); // BOS, 3 UTF-8 bytes, EOS
  });

  it("refuses a tokenizer.json whose special tokens are not CLIP's, or that is not a tokenizer", () => {
    const json = buildTokenizerJson() as { added_tokens: { id: number }[] };
    json.added_tokens[0]!.id = 1;
    expect(() => ClipTokenizer.fromJson(json)).toThrow(/not a CLIP tokenizer: BOS\/EOS ids are 1\/49407/);
    expect(() => ClipTokenizer.fromJson({ model: {} })).toThrow(/not a usable Hugging Face tokenizer/);
  });
});
