import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, slug } from "../../cli/segment.js";
import type { CliIo } from "../../cli/segment.js";
import { decodeRle } from "../../engine/rle.js";
import type { CocoRle } from "../../engine/rle.js";
import { FIXTURES, ROOT, TINY_DIR } from "../helpers/engine.js";
import { startServer } from "../helpers/http-server.js";
import type { TestServer } from "../helpers/http-server.js";
import { decodeMask } from "../helpers/masks.js";

let dir: string;
let server: TestServer;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "sam3-cli-"));
  const room = readFileSync(join(FIXTURES, "room.jpg"));
  server = await startServer({ "/room.jpg": (_req, res) => res.writeHead(200, { "content-type": "image/jpeg" }).end(room) });
});
afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

function io(env: Record<string, string> = {}): CliIo & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    stdout: (t) => out.push(t),
    stderr: (t) => err.push(t),
    env: { SAM3_MODEL_DIR: TINY_DIR, SAM3_DEVICE: "cpu", ...env },
    cwd: ROOT,
  };
}

describe("sam3-segment", () => {
  it("writes one PNG per mask, the overlay and results.json, with progress on stderr", async () => {
    const outDir = join(dir, "png");
    const cli = io();
    expect(await runCli(["test/fixtures/room.jpg", "--concepts", "wall,door,window", "--out", outDir], cli)).toBe(0);
    const results = JSON.parse(readFileSync(join(outDir, "results.json"), "utf8"));
    expect(results.image_size).toEqual([800, 533]);
    expect(Object.keys(results.results)).toEqual(["wall", "door", "window"]);
    expect(results.results.door).toMatchObject({ instance_count: 1, files: ["door-1.png"] });
    expect(results.results.wall.files).toHaveLength(7);
    expect(readdirSync(outDir).sort()).toEqual(["door-1.png", "overlay.jpg", "results.json", ...results.results.wall.files, "window-1.png", "window-2.png"].sort());
    const door = await decodeMask(readFileSync(join(outDir, "door-1.png")).toString("base64"));
    expect([door.width, door.height, door.channels]).toEqual([800, 533, 1]);
    expect((await sharp(join(outDir, "overlay.jpg")).metadata()).format).toBe("jpeg");
    expect(cli.err.join("")).toMatch(/1\/3 concepts done[\s\S]*3\/3 concepts done/);
    expect(cli.out.join("")).toBe(`${join(outDir, "results.json")}\n`);
  });

  it("with --format rle stores COCO RLE in results.json that matches the PNG files", async () => {
    const outDir = join(dir, "rle");
    expect(await runCli(["test/fixtures/room.jpg", "--concepts", "window", "--format", "rle", "--threshold", "0.3", "--no-overlay", "--out", outDir], io())).toBe(0);
    const results = JSON.parse(readFileSync(join(outDir, "results.json"), "utf8"));
    const rles = results.results.window.masks_rle as CocoRle[];
    expect(rles).toHaveLength(2);
    for (let i = 0; i < 2; i++) {
      const png = await decodeMask(readFileSync(join(outDir, results.results.window.files[i])).toString("base64"));
      expect(Buffer.compare(Buffer.from(decodeRle(rles[i]!)), Buffer.from(png.pixels))).toBe(0);
    }
    expect(readdirSync(outDir)).not.toContain("overlay.jpg");
  });

  it("downloads a URL through the worker's guarded downloader", async () => {
    const outDir = join(dir, "url");
    const guarded = io();
    expect(await runCli([server.url("/room.jpg").href, "--concepts", "door", "--out", outDir], guarded)).toBe(1);
    expect(guarded.err.join("")).toMatch(/^Failed to download image: 127\.0\.0\.1 is a loopback address/m);
    expect(server.requests).toHaveLength(0);
    expect(await runCli([server.url("/room.jpg").href, "--concepts", "door", "--max-instances", "1", "--out", outDir], io({ SAM3_ALLOW_PRIVATE_URLS: "1" }))).toBe(0);
    expect(JSON.parse(readFileSync(join(outDir, "results.json"), "utf8")).results.door.instance_count).toBe(1);
  });

  it("reports bad input with the worker's messages and usage errors with exit code 2", async () => {
    const bad = io();
    expect(await runCli(["test/fixtures/room.jpg", "--concepts", "door", "--threshold", "2", "--out", join(dir, "x")], bad)).toBe(1);
    expect(bad.err.join("")).toContain("Invalid input: confidence_threshold must be a number from 0 to 1 (got 2)");
    const missing = io();
    expect(await runCli(["no/such/file.jpg", "--concepts", "door", "--out", join(dir, "x")], missing)).toBe(1);
    expect(missing.err.join("")).toContain("Invalid input: image file no/such/file.jpg cannot be read (ENOENT)");
    expect(await runCli(["test/fixtures/room.jpg"], io())).toBe(2);
    const setting = io({ SAM3_DEVICE: "gpu" });
    expect(await runCli(["test/fixtures/room.jpg", "--concepts", "door"], setting)).toBe(2);
    expect(setting.err.join("")).toBe('SAM3_DEVICE must be one of auto, cuda, cpu (got "gpu")\n');
  });

  it("names files after concepts safely", () => {
    expect(slug("Sliding Door")).toBe("sliding-door");
    expect(slug("../../etc/passwd")).toBe("etc-passwd");
    expect(slug("벽")).toBe("벽");
    expect(slug("!!!")).toBe("concept");
  });
});
