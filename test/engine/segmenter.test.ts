import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EngineError } from "../../engine/errors.js";
import { OVERLAY_COLOURS, TINT_ALPHA } from "../../engine/overlay.js";
import { decodeRle } from "../../engine/rle.js";
import type { Sam3Engine, SegmentResult } from "../../engine/segmenter.js";
import { ROOM } from "../../models/tiny-generator/layout.js";
import { ModelProto, encodeModel } from "../../models/onnx/proto.js";
import { ALPHA, GRAY, PORTRAIT } from "../../scripts/generate-fixtures.js";
import { FIXTURES, ROOT, TINY_DIR, coarseCells, createTinyEngine } from "../helpers/engine.js";
import { decodeMask, inRect, iou, region } from "../helpers/masks.js";
import type { Rect } from "../helpers/masks.js";

const room = readFileSync(join(FIXTURES, "room.jpg"));
const { width: W, height: H } = ROOM;

/** What the room holds, pixel by pixel, per concept. */
const roomObjects: Record<string, (x: number, y: number) => boolean> = {
  door: inRect(ROOM.door),
  window: (x, y) => ROOM.windows.some((w) => inRect(w)(x, y)),
  floor: (x, y) => y >= ROOM.floorTop,
  wall: (x, y) => y < ROOM.floorTop && !roomObjects.door!(x, y) && !roomObjects.window!(x, y),
};

/** The instances the tiny model's design implies: one per coarse cell holding >= 2 % of the object. */
function expectedInstances(concept: string, width: number, height: number, object: (x: number, y: number) => boolean) {
  return coarseCells(width, height)
    .map(({ rect, score }) => {
      const pixels = region(width, height, (x, y) => inRect(rect)(x, y) && object(x, y));
      const area = pixels.reduce((n, v) => n + (v ? 1 : 0), 0);
      const cellArea = (rect[2] - rect[0]) * (rect[3] - rect[1]);
      return { concept, rect, score, pixels, fraction: area / cellArea };
    })
    .filter((e) => e.fraction >= 0.05);
}

async function expectMasksMatch(result: SegmentResult, concept: string, object: (x: number, y: number) => boolean) {
  const [width, height] = result.image_size;
  const expected = expectedInstances(concept, width, height, object);
  const got = result.results[concept]!;
  expect(got.masks_base64!).toHaveLength(got.instance_count);
  for (let i = 0; i < got.instance_count; i++) {
    const mask = await decodeMask(got.masks_base64![i]!);
    expect([mask.width, mask.height, mask.channels, mask.depth]).toEqual([width, height, 1, "uchar"]);
    expect(mask.pixels.every((v) => v === 0 || v === 255)).toBe(true);
    const best = expected.map((e) => ({ e, iou: iou(mask.pixels, e.pixels) })).sort((a, b) => b.iou - a.iou)[0]!;
    expect(best.iou, `${concept} #${i}`).toBeGreaterThanOrEqual(0.95);
    expect(got.scores[i]).toBeCloseTo(best.e.score, 5);
    // The box encloses the instance: its corners sit on the known region's bounds, within 2 px.
    const [x1, y1, x2, y2] = got.boxes[i]!;
    const ys = [...best.e.pixels.keys()].filter((p) => best.e.pixels[p]).map((p) => [p % width, Math.floor(p / width)] as const);
    expect(Math.abs(x1 - Math.min(...ys.map((p) => p[0])))).toBeLessThanOrEqual(2.5);
    expect(Math.abs(y2 - (Math.max(...ys.map((p) => p[1])) + 1))).toBeLessThanOrEqual(2.5);
    expect(x2).toBeGreaterThan(x1);
    expect(y2).toBeGreaterThan(y1);
  }
}

let engine: Sam3Engine;
beforeAll(async () => {
  engine = await createTinyEngine();
});
afterAll(async () => {
  await engine.dispose();
});

describe("the room fixture on the tiny model", () => {
  it("gives the counts the model's design implies, with an entry for every concept in request order", async () => {
    const result = await engine.segment({ image: room, concepts: ["wall", "door", "window"], threshold: 0.5 });
    expect(result.image_size).toEqual([W, H]);
    expect(Object.keys(result.results)).toEqual(["wall", "door", "window"]);
    expect(Object.fromEntries(Object.entries(result.results).map(([k, v]) => [k, v.instance_count]))).toEqual({ wall: 7, door: 1, window: 2 });
    for (const concept of ["wall", "door", "window"]) {
      const expected = expectedInstances(concept, W, H, roomObjects[concept]!).filter((e) => e.score > 0.5);
      expect(result.results[concept]!.instance_count).toBe(expected.length);
    }
  });

  it.each([
    [0.3, { wall: 8, door: 1, window: 2, floor: 3 }],
    [0.5, { wall: 7, door: 1, window: 2, floor: 2 }],
    [0.7, { wall: 4, door: 1, window: 1, floor: 1 }],
  ])("at threshold %f keeps scores above it, sorted, with masks matching the objects", async (threshold, counts) => {
    const result = await engine.segment({ image: room, concepts: Object.keys(counts), threshold });
    for (const [concept, count] of Object.entries(counts)) {
      const got = result.results[concept]!;
      expect(got.instance_count, concept).toBe(count);
      expect(got.scores.every((s) => s > threshold)).toBe(true);
      expect(got.scores).toEqual([...got.scores].sort((a, b) => b - a));
      await expectMasksMatch(result, concept, roomObjects[concept]!);
    }
  });

  it("answers absent concepts with 0 and empty arrays", async () => {
    const result = await engine.segment({ image: room, concepts: ["sofa", "chair", "person"], threshold: 0.3 });
    for (const c of ["sofa", "chair", "person"]) expect(result.results[c]).toEqual({ instance_count: 0, masks_base64: [], scores: [], boxes: [] });
  });

  it("caps instances per concept before resizing, keeping the best", async () => {
    const all = await engine.segment({ image: room, concepts: ["wall"], threshold: 0.3 });
    const capped = await engine.segment({ image: room, concepts: ["wall"], threshold: 0.3, maxInstances: 3 });
    expect(capped.results.wall!.scores).toEqual(all.results.wall!.scores.slice(0, 3));
    expect(capped.results.wall!.masks_base64!).toEqual(all.results.wall!.masks_base64!.slice(0, 3));
  });

  it("answers duplicated concepts once and keys results by the string as sent", async () => {
    const result = await engine.segment({ image: room, concepts: ["Door", "door", "Door"], threshold: 0.5 });
    expect(Object.keys(result.results)).toEqual(["Door", "door"]);
    expect(result.results.Door!.instance_count).toBe(1);
  });
});

describe("opt-in extensions", () => {
  it("leaves the default response without masks_rle or overlay_base64", async () => {
    const result = await engine.segment({ image: room, concepts: ["door"], threshold: 0.5 });
    expect(Object.keys(result.results.door!)).toEqual(["instance_count", "masks_base64", "scores", "boxes"]);
    expect(result).not.toHaveProperty("overlay_base64");
  });

  it("mask_format rle gives COCO RLE that decodes to exactly the PNG masks", async () => {
    const png = await engine.segment({ image: room, concepts: ["wall", "door", "window"], threshold: 0.3 });
    const rle = await engine.segment({ image: room, concepts: ["wall", "door", "window"], threshold: 0.3, maskFormat: "rle" });
    for (const concept of ["wall", "door", "window"]) {
      const a = png.results[concept]!;
      const b = rle.results[concept]!;
      expect(Object.keys(b)).toEqual(["instance_count", "masks_rle", "scores", "boxes"]);
      expect(b.scores).toEqual(a.scores);
      expect(b.masks_rle).toHaveLength(a.instance_count);
      for (let i = 0; i < a.instance_count; i++) {
        expect(b.masks_rle![i]!.size).toEqual([H, W]);
        const fromPng = (await decodeMask(a.masks_base64![i]!)).pixels;
        expect(Buffer.compare(Buffer.from(decodeRle(b.masks_rle![i]!)), Buffer.from(fromPng))).toBe(0);
      }
    }
  });

  it("return_overlay draws each concept's masks in its colour, outlines them and leaves the rest as it was", async () => {
    const result = await engine.segment({ image: room, concepts: ["door", "window"], threshold: 0.5, overlay: true });
    const jpeg = Buffer.from(result.overlay_base64!, "base64");
    const meta = await sharp(jpeg).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(["jpeg", W, H]);
    const { data } = await sharp(jpeg).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const original = (await sharp(room).raw().toBuffer({ resolveWithObject: true })).data;
    const at = (buf: Buffer, x: number, y: number) => [...buf.subarray((y * W + x) * 3, (y * W + x) * 3 + 3)];
    const close = (a: number[], b: number[], tol: number) => a.every((v, i) => Math.abs(v - b[i]!) <= tol);
    const tinted = (x: number, y: number, colour: readonly number[]) =>
      at(original, x, y).map((v, i) => v * (1 - TINT_ALPHA) + colour[i]! * TINT_ALPHA);
    // Inside the door and a window: the image blended with the concept's colour.
    expect(close(at(data, 105, 265), tinted(105, 265, OVERLAY_COLOURS[0]!), 12)).toBe(true);
    expect(close(at(data, 500, 195), tinted(500, 195, OVERLAY_COLOURS[1]!), 12)).toBe(true);
    // On the door's outline: the concept's colour itself.
    expect(close(at(data, 61, 265), [...OVERLAY_COLOURS[0]!], 40)).toBe(true);
    // Outside every mask (wall between the windows, floor): unchanged.
    expect(close(at(data, 600, 195), at(original, 600, 195), 10)).toBe(true);
    expect(close(at(data, 400, 480), at(original, 400, 480), 10)).toBe(true);
    // The legend sits in the top-left corner on a dark box.
    expect(at(data, 2, 2).every((v) => v < 120)).toBe(true);
  });

  it("return_overlay works on a cached image too (the image is decoded again for it)", async () => {
    const cached = await createTinyEngine({ imageCacheSize: 2 });
    try {
      await cached.segment({ image: room, concepts: ["door"], threshold: 0.5 });
      const second = await cached.segment({ image: room, concepts: ["door"], threshold: 0.5, overlay: true });
      expect(second.imageCacheHit).toBe(true);
      expect(second.overlay_base64!.length).toBeGreaterThan(1000);
    } finally {
      await cached.dispose();
    }
  });
});

describe("image handling", () => {
  it("applies EXIF orientation: the portrait reports its displayed size and its masks line up with it", async () => {
    const image = readFileSync(join(FIXTURES, "portrait-exif6.jpg"));
    const result = await engine.segment({ image, concepts: ["person", "lamp"], threshold: 0.5 });
    expect(result.image_size).toEqual([PORTRAIT.width, PORTRAIT.height]);
    const { person, lamp } = PORTRAIT;
    expect(result.results.person!.instance_count).toBe(1);
    expect(result.results.lamp!.instance_count).toBe(1);
    const personMask = await decodeMask(result.results.person!.masks_base64![0]!);
    const ellipse = region(PORTRAIT.width, PORTRAIT.height, (x, y) => ((x - person.cx) / person.rx) ** 2 + ((y - person.cy) / person.ry) ** 2 <= 1);
    expect(iou(personMask.pixels, ellipse)).toBeGreaterThanOrEqual(0.95);
    const lampMask = await decodeMask(result.results.lamp!.masks_base64![0]!);
    expect(iou(lampMask.pixels, region(PORTRAIT.width, PORTRAIT.height, inRect(lamp)))).toBeGreaterThanOrEqual(0.95);
  });

  it("drops alpha without compositing, as PIL's convert('RGB') does", async () => {
    const image = readFileSync(join(FIXTURES, "alpha.png"));
    const result = await engine.segment({ image, concepts: ["door", "window"], threshold: 0.5 });
    const door = await decodeMask(result.results.door!.masks_base64![0]!);
    expect(iou(door.pixels, region(ALPHA.width, ALPHA.height, inRect(ALPHA.door)))).toBeGreaterThanOrEqual(0.95);
    const window = await decodeMask(result.results.window!.masks_base64![0]!);
    expect(iou(window.pixels, region(ALPHA.width, ALPHA.height, inRect(ALPHA.window)))).toBeGreaterThanOrEqual(0.95);
  });

  it("reads a grayscale JPEG as three equal channels", async () => {
    const image = readFileSync(join(FIXTURES, "gray.jpg"));
    const result = await engine.segment({ image, concepts: ["ceiling"], threshold: 0.3 });
    expect(result.image_size).toEqual([GRAY.width, GRAY.height]);
    const union = new Uint8Array(GRAY.width * GRAY.height);
    for (const m of result.results.ceiling!.masks_base64!) (await decodeMask(m)).pixels.forEach((v, i) => (union[i] ||= v));
    expect(iou(union, region(GRAY.width, GRAY.height, inRect(GRAY.patch as Rect)))).toBeGreaterThanOrEqual(0.95);
  });

  it("fails undecodable bytes as IMAGE_DECODE and truncated ones too", async () => {
    await expect(engine.segment({ image: Buffer.from("<html>not an image</html>"), concepts: ["wall"], threshold: 0.5 })).rejects.toMatchObject({
      code: "IMAGE_DECODE",
      message: "image could not be decoded: input contains unsupported image format",
    });
    await expect(engine.segment({ image: room.subarray(0, room.length / 2), concepts: ["wall"], threshold: 0.5 })).rejects.toMatchObject({
      code: "IMAGE_DECODE",
    });
  });

  it("fails an image over the pixel limit from its header, before decoding", async () => {
    const small = await createTinyEngine({ maxImagePixels: 100_000 });
    try {
      await expect(small.segment({ image: room, concepts: ["wall"], threshold: 0.5 })).rejects.toMatchObject({
        code: "IMAGE_TOO_LARGE",
        message: "image is 800x533 (426400 pixels), over the limit of 100000 pixels (SAM3_MAX_IMAGE_PIXELS)",
      });
    } finally {
      await small.dispose();
    }
  });

  it("refuses formats outside the accepted list (SVG)", async () => {
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>');
    await expect(engine.segment({ image: svg, concepts: ["wall"], threshold: 0.5 })).rejects.toMatchObject({
      code: "IMAGE_DECODE",
      message: "image format svg is not accepted (accepted: jpeg, png, webp, gif, avif, tiff)",
    });
  });
});

describe("what runs", () => {
  it("runs the vision encoder once for 5 concepts, the text encoder once for all new ones, the decoder per concept", async () => {
    const e = await createTinyEngine({ imageCacheSize: 0 });
    try {
      await e.segment({ image: room, concepts: ["wall", "door", "window", "floor", "sofa"], threshold: 0.5 });
      expect(e.runCounts).toEqual({ vision: 1, text: 1, decoder: 5 });
      // A second job with seen concepts (one only differing in case) never runs the text encoder.
      await e.segment({ image: room, concepts: ["door", "WALL"], threshold: 0.5 });
      expect(e.runCounts).toEqual({ vision: 2, text: 1, decoder: 7 });
      await e.segment({ image: room, concepts: ["door", "lamp"], threshold: 0.5 });
      expect(e.runCounts).toEqual({ vision: 3, text: 2, decoder: 9 });
    } finally {
      await e.dispose();
    }
  });

  it("reuses the image features for the same image bytes", async () => {
    const e = await createTinyEngine({ imageCacheSize: 2 });
    try {
      const first = await e.segment({ image: room, concepts: ["door"], threshold: 0.5 });
      const second = await e.segment({ image: Buffer.from(room), concepts: ["window"], threshold: 0.5 });
      expect([first.imageCacheHit, second.imageCacheHit]).toEqual([false, true]);
      expect(e.runCounts.vision).toBe(1);
      expect(second.image_size).toEqual([W, H]);
      expect(second.results.window!.instance_count).toBe(2);
    } finally {
      await e.dispose();
    }
  });

  it("gives the same results with the decoder batched over concepts", async () => {
    const batched = await createTinyEngine({ decoderBatching: "batched" });
    try {
      const a = await batched.segment({ image: room, concepts: ["wall", "door", "window"], threshold: 0.3 });
      const b = await engine.segment({ image: room, concepts: ["wall", "door", "window"], threshold: 0.3 });
      expect(a.results).toEqual(b.results);
      expect(batched.runCounts.decoder).toBe(1);
    } finally {
      await batched.dispose();
    }
  });

  it("stops at the next stage when the job's signal fires", async () => {
    const controller = new AbortController();
    const run = engine.segment({
      image: room,
      concepts: ["wall", "door", "window"],
      threshold: 0.3,
      signal: controller.signal,
      onConceptDone: () => controller.abort(),
    });
    await expect(run).rejects.toMatchObject({ code: "ABORTED" });
  });
});

describe("model loading", () => {
  it("names a missing model file", async () => {
    for (const missing of ["geo-encoder-mask-decoder.onnx", "tokenizer.json"]) {
      const dir = mkdtempSync(join(tmpdir(), "sam3-model-"));
      try {
        cpSync(TINY_DIR, dir, { recursive: true });
        rmSync(join(dir, missing));
        const err = await createTinyEngine({ modelDir: dir }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(EngineError);
        expect(err).toMatchObject({ code: "MODEL_FILE_NOT_FOUND", message: `Model file not found: ${missing}` });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });

  it("runs a variant with float16 inputs and outputs, converting at the boundary, to the same results", async () => {
    const half = await createTinyEngine({ modelDir: join(ROOT, "models/tiny-fp16") });
    try {
      const a = await half.segment({ image: room, concepts: ["wall", "door", "window"], threshold: 0.5 });
      const b = await engine.segment({ image: room, concepts: ["wall", "door", "window"], threshold: 0.5 });
      for (const c of ["wall", "door", "window"]) {
        expect(a.results[c]!.instance_count).toBe(b.results[c]!.instance_count);
        a.results[c]!.scores.forEach((s, i) => expect(s).toBeCloseTo(b.results[c]!.scores[i]!, 2));
        for (let i = 0; i < a.results[c]!.instance_count; i++) {
          const [ma, mb] = await Promise.all([decodeMask(a.results[c]!.masks_base64![i]!), decodeMask(b.results[c]!.masks_base64![i]!)]);
          expect(iou(ma.pixels, mb.pixels)).toBeGreaterThanOrEqual(0.98);
        }
      }
    } finally {
      await half.dispose();
    }
  });

  it("fails clearly when SAM3_DEVICE=cuda cannot load, and falls back with one warning on auto", async () => {
    const err = await createTinyEngine({ device: "cuda" }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "DEVICE_UNAVAILABLE" });
    expect((err as Error).message).toMatch(/^SAM3_DEVICE=cuda but the CUDA execution provider cannot be used: /);
    const warnings: string[] = [];
    const auto = await createTinyEngine({ device: "auto", warn: (m) => warnings.push(m) });
    try {
      expect(auto.device).toBe("cpu");
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/^CUDA execution provider unavailable, running on CPU: /);
    } finally {
      await auto.dispose();
    }
  });

  it("warms up at creation so that the first job is not the cold one, without counting it", async () => {
    const warm = await createTinyEngine({ warmUp: true });
    try {
      expect(warm.runCounts).toEqual({ vision: 0, text: 0, decoder: 0 });
    } finally {
      await warm.dispose();
    }
  });
});

describe("sharp fixture sanity", () => {
  it("stores the portrait sideways with orientation 6", async () => {
    const meta = await sharp(join(FIXTURES, "portrait-exif6.jpg")).metadata();
    expect([meta.width, meta.height, meta.orientation]).toEqual([PORTRAIT.height, PORTRAIT.width, 6]);
  });
});

describe("an export whose batch dimension is fixed at 1", () => {
  it("gets its concepts one per text-encoder run and one per decoder run, even with batching asked for", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sam3-fixed-"));
    try {
      cpSync(TINY_DIR, dir, { recursive: true });
      for (const file of ["text-encoder.onnx", "geo-encoder-mask-decoder.onnx"]) {
        const model = ModelProto.toObject(ModelProto.decode(readFileSync(join(TINY_DIR, file)))) as {
          graph: { input: { type: { tensor_type: { shape: { dim: { dim_param?: string; dim_value?: number }[] } } } }[] };
        };
        for (const input of model.graph.input) {
          const first = input.type.tensor_type.shape.dim[0]!;
          if (first.dim_param === "batch") input.type.tensor_type.shape.dim[0] = { dim_value: 1 };
        }
        writeFileSync(join(dir, file), encodeModel(model));
      }
      const fixed = await createTinyEngine({ modelDir: dir, decoderBatching: "batched", warmUp: true });
      try {
        const result = await fixed.segment({ image: room, concepts: ["wall", "door", "window"], threshold: 0.5 });
        expect(Object.values(result.results).map((r) => r.instance_count)).toEqual([7, 1, 2]);
        expect(fixed.runCounts).toEqual({ vision: 1, text: 3, decoder: 3 });
      } finally {
        await fixed.dispose();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
