/**
 * The local one-shot through the real entry point (`node dist/handler/main.js`, built by `npm test`'s
 * pretest): `--test_input` and ./test_input.json, stdout carrying exactly one JSON document, exit codes.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FIXTURES, ROOT, TINY_DIR } from "../helpers/engine.js";

const MAIN = join(ROOT, "dist", "handler", "main.js");
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "sam3-local-"));
  dirs.push(d);
  return d;
}

/** Runs main.js with a clean environment (no RUNPOD_* from the host), collecting output. */
function run(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? "", SAM3_MODEL_DIR: TINY_DIR, SAM3_DEVICE: "cpu", ...options.env };
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN, ...args], { cwd: options.cwd ?? ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d));
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("node dist/handler/main.js as a one-shot", () => {
  it("runs a --test_input longer than 28 KB (onnxruntime-node 1.29/1.30 crash there) and prints one /runsync-shaped document", async () => {
    const portrait64 = readFileSync(join(FIXTURES, "portrait-exif6.jpg")).toString("base64");
    const testInput = JSON.stringify({ input: { image_base64: portrait64, concepts: ["person", "lamp"] } });
    expect(testInput.length).toBeGreaterThan(40_000);
    const { code, stdout, stderr } = await run(["--test_input", testInput]);
    expect(code, stderr).toBe(0);
    expect(stdout.trim().split("\n")).toHaveLength(1);
    const doc = JSON.parse(stdout);
    expect(Object.keys(doc)).toEqual(["id", "status", "output", "executionTime"]);
    expect(doc).toMatchObject({ id: "local_test", status: "COMPLETED", output: { output: { image_size: [400, 600] } } });
    expect(doc.output.output.results.person.instance_count).toBe(1);
    expect(Number.isInteger(doc.executionTime)).toBe(true);
    // Logs went to stderr, as JSON lines.
    expect(stderr.split("\n").filter(Boolean).every((l) => l.startsWith("{"))).toBe(true);
  });

  it("reads ./test_input.json from the working directory, with its id", async () => {
    const dir = tempDir();
    const room64 = readFileSync(join(FIXTURES, "room.jpg")).toString("base64");
    writeFileSync(join(dir, "test_input.json"), JSON.stringify({ id: "my-event", input: { image_base64: room64, concepts: ["door"] } }));
    const { code, stdout } = await run([], { cwd: dir });
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ id: "my-event", status: "COMPLETED", output: { output: { results: { door: { instance_count: 1 } } } } });
  });

  it("answers a job with invalid input as COMPLETED with output.error, exit 0", async () => {
    const { code, stdout } = await run(["--test_input", JSON.stringify({ input: { image_base64: "AAAA" } })]);
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ status: "COMPLETED", output: { error: "Invalid input: concepts must be an array of strings (got nothing)" } });
  });

  it("exits 1 with nothing on stdout when there is no job: no file, unparsable JSON, no input", async () => {
    const missing = await run([], { cwd: tempDir() });
    expect([missing.code, missing.stdout]).toEqual([1, ""]);
    expect(missing.stderr).toContain("test_input.json not found, exiting.");
    const garbled = await run(["--test_input", "{not json"]);
    expect([garbled.code, garbled.stdout]).toEqual([1, ""]);
    expect(garbled.stderr).toContain("test input is not valid JSON");
    const noInput = await run(["--test_input", JSON.stringify({ id: "x" })]);
    expect([noInput.code, noInput.stdout]).toEqual([1, ""]);
    expect(noInput.stderr).toContain(String.raw`test input has no \"input\"`); // JSON-escaped in the log line
  });

  it("stops at start-up with exit 2 on an unknown flag or a bad setting, naming it", async () => {
    const flag = await run(["--no-such-flag"]);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toMatch(/no-such-flag[\s\S]*usage:/);
    const setting = await run([], { env: { SAM3_MAX_CONCEPTS: "lots" } });
    expect(setting.code).toBe(2);
    expect(setting.stderr).toContain('SAM3_MAX_CONCEPTS must be an integer from 1 to 1000 (got "lots")');
  });

  it("uses the bundled tiny model, with a warning, when SAM3_MODEL_DIR is unset and models/sam3 is empty", async () => {
    const { code, stdout, stderr } = await run(["--test_input", JSON.stringify({ input: { image_base64: readFileSync(join(FIXTURES, "room.jpg")).toString("base64"), concepts: ["window"] } })], {
      env: { SAM3_MODEL_DIR: "" },
    });
    expect(code).toBe(0);
    expect(stderr).toContain("using the bundled tiny test model");
    expect(JSON.parse(stdout).output.output.results.window.instance_count).toBe(2);
  });
});
