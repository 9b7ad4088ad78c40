import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { MODEL_FILES } from "../../models/contract.js";
import {
  FetchModelError,
  LOCAL_MANIFEST,
  fetchModel,
  loadManifest,
  parseManifest,
  readLocalManifest,
  runCli,
  type FetchOptions,
  type ModelManifest,
  type RemoteFile,
} from "../../models/fetch-model.js";
import { closedPort, startModelServer, type ModelServer, type ModelServerOptions } from "../helpers/model-server.js";

/** Deterministic pseudo-random bytes, a few KB per file. */
function fakeBytes(seed: string, size: number): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; parts.length * 32 < size; i++) parts.push(createHash("sha256").update(`${seed}:${i}`).digest());
  return Buffer.concat(parts).subarray(0, size);
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

const REMOTE = {
  "tokenizer.json": fakeBytes("tok", 2_000),
  "vision-encoder-fp16.onnx": fakeBytes("vis", 9_000),
  "text-encoder-fp16.onnx": fakeBytes("txt", 5_000),
  "geo-encoder-mask-decoder-fp16.onnx": fakeBytes("dec", 7_000),
  "vision-encoder-fp16.onnx.data": fakeBytes("vis-data", 3_000),
};
type RemoteName = keyof typeof REMOTE;

/** Contract name -> remote name for the test variant. */
const LAYOUT: Record<string, RemoteName> = {
  "tokenizer.json": "tokenizer.json",
  "vision-encoder.onnx": "vision-encoder-fp16.onnx",
  "text-encoder.onnx": "text-encoder-fp16.onnx",
  "geo-encoder-mask-decoder.onnx": "geo-encoder-mask-decoder-fp16.onnx",
  "vision-encoder-fp16.onnx.data": "vision-encoder-fp16.onnx.data",
};

function entry(remote: RemoteName, hashes: boolean, override: Partial<RemoteFile> = {}): RemoteFile {
  const body = REMOTE[remote];
  return { remote, status: "confirmed", size: hashes ? body.length : null, sha256: hashes ? sha(body) : null, ...override };
}

/** A manifest for the test server: variant fp16 with a sidecar; hashes recorded unless told otherwise. */
function testManifest(opts: { hashes?: boolean; override?: Partial<Record<RemoteName, Partial<RemoteFile>>> } = {}): ModelManifest {
  const hashes = opts.hashes ?? true;
  const e = (r: RemoteName) => entry(r, hashes, opts.override?.[r]);
  return {
    source: "http://127.0.0.1:9/unused/",
    shared: { "tokenizer.json": e("tokenizer.json") },
    variants: {
      fp16: {
        files: {
          "vision-encoder.onnx": e("vision-encoder-fp16.onnx"),
          "text-encoder.onnx": e("text-encoder-fp16.onnx"),
          "geo-encoder-mask-decoder.onnx": e("geo-encoder-mask-decoder-fp16.onnx"),
        },
        extra: [e("vision-encoder-fp16.onnx.data")],
      },
    },
  };
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "fetch-model-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function server(opts: Partial<ModelServerOptions> = {}): Promise<ModelServer> {
  const s = await startModelServer({ files: REMOTE, ...opts });
  cleanups.push(() => s.close());
  return s;
}

/** fetchModel against the loopback server with millisecond backoff and a captured log. */
async function fetchInto(dir: string, baseUrl: string, extra: Partial<FetchOptions> = {}) {
  const agent = new Agent(); // no proxy: tests only ever talk to 127.0.0.1
  cleanups.push(() => agent.close());
  const log: string[] = [];
  const run = fetchModel({
    variant: "fp16",
    dir,
    manifest: testManifest(),
    baseUrl,
    dispatcher: agent,
    backoffMs: 1,
    maxBackoffMs: 5,
    retries: 3,
    log: (l) => log.push(l),
    ...extra,
  });
  return { run, log };
}

async function failure(p: Promise<unknown>): Promise<FetchModelError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FetchModelError);
  return err as FetchModelError;
}

function expectModelDir(dir: string) {
  for (const [local, remote] of Object.entries(LAYOUT)) {
    expect(Buffer.compare(readFileSync(join(dir, local)), REMOTE[remote]), local).toBe(0);
  }
  expect(readdirSync(dir).filter((f) => f.endsWith(".partial") || f.endsWith(".tmp"))).toEqual([]);
}

describe("fetchModel", () => {
  it("downloads, verifies and stores a variant under the contract names (through a redirect)", async () => {
    const s = await server({ redirect: true });
    const dir = tempDir();
    const progress: number[] = [];
    const { run } = await fetchInto(dir, s.baseUrl, { onProgress: (p) => progress.push(p.received) });
    const summary = await run;

    expectModelDir(dir);
    expect(summary.verified).toBe(true);
    expect(summary.files.map((f) => [f.file, f.action, f.verified])).toEqual(Object.keys(LAYOUT).map((f) => [f, "downloaded", true]));
    expect(progress.length).toBeGreaterThan(0);

    const local = (await readLocalManifest(dir))!;
    expect(local).toMatchObject({ variant: "fp16", source: s.baseUrl, complete: true, verified: true });
    expect(local.files["vision-encoder.onnx"]).toMatchObject({
      remote: "vision-encoder-fp16.onnx",
      url: `${s.baseUrl}vision-encoder-fp16.onnx`,
      size: REMOTE["vision-encoder-fp16.onnx"].length,
      sha256: sha(REMOTE["vision-encoder-fp16.onnx"]),
      verified: true,
    });
    expect(Date.parse(local.fetchedAt)).not.toBeNaN();
  });

  it("resumes with Range after the connection is cut mid-body", async () => {
    const s = await server({ redirect: true, cutOnce: ["vision-encoder-fp16.onnx"] });
    const dir = tempDir();
    const { run, log } = await fetchInto(dir, s.baseUrl);
    await run;

    expectModelDir(dir);
    const reqs = s.requestsFor("vision-encoder-fp16.onnx");
    expect(reqs.map((r) => r.status)).toEqual([200, 206]);
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(reqs[1]!.range ?? "")?.[1]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThan(REMOTE["vision-encoder-fp16.onnx"].length);
    expect(log.join("\n")).toMatch(/resuming at byte/);
  });

  it("starts over when the server ignores Range (200)", async () => {
    const s = await server({ ignoreRange: true, cutOnce: ["text-encoder-fp16.onnx"] });
    const dir = tempDir();
    const { run, log } = await fetchInto(dir, s.baseUrl);
    await run;

    expectModelDir(dir);
    const reqs = s.requestsFor("text-encoder-fp16.onnx");
    expect(reqs.map((r) => r.status)).toEqual([200, 200]);
    expect(reqs[1]!.range).toMatch(/^bytes=\d+-$/);
    expect(log.join("\n")).toMatch(/ignored the Range request/);
  });

  it("finishes a partial file that is already whole (416) without downloading it again", async () => {
    const s = await server();
    const dir = tempDir();
    writeFileSync(join(dir, "text-encoder-fp16.onnx.partial"), REMOTE["text-encoder-fp16.onnx"]);
    // Size unknown, so only the server can say the partial is complete.
    const manifest = testManifest({ override: { "text-encoder-fp16.onnx": { size: null } } });
    const { run } = await fetchInto(dir, s.baseUrl, { manifest });
    await run;

    expectModelDir(dir);
    expect(s.requestsFor("text-encoder-fp16.onnx").map((r) => r.status)).toEqual([416]);
  });

  it("retries 5xx with backoff", async () => {
    const s = await server({ failFirst: { "tokenizer.json": { status: 503, times: 2 } } });
    const dir = tempDir();
    const { run, log } = await fetchInto(dir, s.baseUrl);
    await run;

    expectModelDir(dir);
    expect(s.requestsFor("tokenizer.json").map((r) => r.status)).toEqual([503, 503, 200]);
    expect(log.filter((l) => /HTTP 503 .* retry \d\/3/.test(l))).toHaveLength(2);
  });

  it("deletes the download and fails clearly on a checksum mismatch", async () => {
    const s = await server();
    const dir = tempDir();
    const wrong = "0".repeat(64);
    const manifest = testManifest({ override: { "text-encoder-fp16.onnx": { sha256: wrong } } });
    const { run } = await fetchInto(dir, s.baseUrl, { manifest });
    const err = await failure(run);

    expect(err.code).toBe("checksum");
    expect(err.message).toContain("text-encoder-fp16.onnx does not match the manifest");
    expect(err.message).toContain(`sha256 ${sha(REMOTE["text-encoder-fp16.onnx"])}, expected ${wrong}`);
    expect(err.message).toContain("partial file deleted");
    expect(existsSync(join(dir, "text-encoder.onnx"))).toBe(false);
    expect(existsSync(join(dir, "text-encoder-fp16.onnx.partial"))).toBe(false);
    expect(s.requestsFor("text-encoder-fp16.onnx")).toHaveLength(1); // a mismatch is not retried
    expect((await readLocalManifest(dir))?.complete).toBe(false);
  });

  it("fails on 404 naming the URL, without retrying", async () => {
    const s = await server();
    const dir = tempDir();
    const manifest = testManifest({ override: { "text-encoder-fp16.onnx": { remote: "text-encoder-q8.onnx", status: "unconfirmed" } as Partial<RemoteFile> } });
    const { run } = await fetchInto(dir, s.baseUrl, { manifest });
    const err = await failure(run);

    expect(err.code).toBe("not-found");
    expect(err.message).toContain(`not found (HTTP 404): ${s.baseUrl}text-encoder-q8.onnx`);
    expect(err.message).toContain("unconfirmed");
    expect(s.requestsFor("text-encoder-q8.onnx")).toHaveLength(1);
  });

  it("never shows a private mirror's credentials or query token in logs, errors or the local manifest", async () => {
    const s = await server();
    const dir = tempDir();
    const secretBase = s.baseUrl.replace("http://", "http://mirror-user:pw-SECRET@") + "?token=tok-SECRET";
    const manifest = testManifest({ override: { "text-encoder-fp16.onnx": { remote: "missing.onnx" } as Partial<RemoteFile> } });
    const { run, log } = await fetchInto(dir, secretBase, { manifest });
    const err = await failure(run);
    expect(err.code).toBe("not-found");
    const everything = [err.message, ...log, readFileSync(join(dir, LOCAL_MANIFEST), "utf8")].join("\n");
    expect(everything).not.toMatch(/SECRET/);
    expect(err.message).toContain(`not found (HTTP 404): ${s.baseUrl}missing.onnx`);
  });

  it("says it cannot reach the host when offline (connection refused)", async () => {
    const port = await closedPort();
    const dir = tempDir();
    const { run, log } = await fetchInto(dir, `http://127.0.0.1:${port}/sam3/`, { retries: 2 });
    const err = await failure(run);

    expect(err.code).toBe("offline");
    expect(err.message).toMatch(new RegExp(`^cannot reach 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
    expect(err.message).toContain("offline? set SAM3_MODEL_BASE_URL");
    expect(err.message).toContain("gave up after 3 attempts");
    expect(log.filter((l) => l.includes("retry"))).toHaveLength(2);
  });

  it("prints the sha256 of files without a recorded hash and refuses to call them verified", async () => {
    const s = await server();
    const dir = tempDir();
    const manifest = testManifest({ hashes: false });

    const first = await fetchInto(dir, s.baseUrl, { manifest });
    const err = await failure(first.run);
    expect(err.code).toBe("unverified");
    expect(err.message).toMatch(/5 file\(s\) unverified.*--allow-unverified/);
    for (const [local, remote] of Object.entries(LAYOUT)) {
      expect(first.log).toContain(`UNVERIFIED ${local} (${remote}): sha256=${sha(REMOTE[remote])} size=${REMOTE[remote].length}; no hash recorded in the manifest`);
    }
    expect(err.summary?.verified).toBe(false);
    expectModelDir(dir);
    expect(await readLocalManifest(dir)).toMatchObject({ complete: true, verified: false });

    // With the flag it succeeds, still marked unverified, and the earlier download is reused.
    const before = s.requests.length;
    const second = await fetchInto(dir, s.baseUrl, { manifest, allowUnverified: true });
    const summary = await second.run;
    expect(summary.verified).toBe(false);
    expect(summary.files.every((f) => f.action === "skipped" && !f.verified)).toBe(true);
    expect(s.requests.length).toBe(before);
    expect(await readLocalManifest(dir)).toMatchObject({ complete: true, verified: false });
  });

  it("skips verified files on a re-run and replaces only a damaged one", async () => {
    const s = await server();
    const dir = tempDir();
    await (await fetchInto(dir, s.baseUrl)).run;
    const afterFirst = s.requests.length;

    const again = await (await fetchInto(dir, s.baseUrl)).run;
    expect(again.files.every((f) => f.action === "skipped" && f.verified)).toBe(true);
    expect(s.requests.length).toBe(afterFirst);

    writeFileSync(join(dir, "geo-encoder-mask-decoder.onnx"), Buffer.alloc(REMOTE["geo-encoder-mask-decoder-fp16.onnx"].length));
    const repaired = await (await fetchInto(dir, s.baseUrl)).run;
    expect(repaired.files.filter((f) => f.action === "downloaded").map((f) => f.file)).toEqual(["geo-encoder-mask-decoder.onnx"]);
    expectModelDir(dir);
  });
});

describe("fetch-model CLI", () => {
  async function cli(args: string[], env: Record<string, string> = {}) {
    const agent = new Agent();
    cleanups.push(() => agent.close());
    let stdout = "";
    let stderr = "";
    const code = await runCli(args, { env, stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), dispatcher: agent, backoffMs: 1 });
    return { code, stdout, stderr };
  }

  function manifestFile(manifest: ModelManifest): string {
    const path = join(tempDir(), "manifest.json");
    writeFileSync(path, JSON.stringify(manifest));
    return path;
  }

  it("fetches with --json: summary on stdout, progress on stderr, exit 0", async () => {
    const s = await server();
    const dir = tempDir();
    const r = await cli(["--variant", "fp16", "--dir", dir, "--manifest", manifestFile(testManifest()), "--json"], { SAM3_MODEL_BASE_URL: s.baseUrl });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ variant: "fp16", verified: true });
    expect(r.stderr).toMatch(/vision-encoder-fp16\.onnx: 100% \(/);
    expectModelDir(dir);
  });

  it("exits 3 on unverified files unless --allow-unverified", async () => {
    const s = await server();
    const dir = tempDir();
    const args = ["--variant", "fp16", "--dir", dir, "--manifest", manifestFile(testManifest({ hashes: false })), "--base-url", s.baseUrl];
    const refused = await cli(args);
    expect(refused.code).toBe(3);
    expect(refused.stdout).toBe("");
    expect(refused.stderr.trimEnd().split("\n").at(-1)).toMatch(/^fetch-model: 5 file\(s\) unverified/);
    const allowed = await cli([...args, "--allow-unverified"]);
    expect(allowed.code).toBe(0);
    expect(allowed.stderr).toContain("UNVERIFIED, allowed by --allow-unverified");
  });

  it("exits 2 on usage errors and 1 with a one-line reason on failures", async () => {
    const path = manifestFile(testManifest());
    expect((await cli(["--variant", "fp16"])).code).toBe(2); // no --dir
    expect((await cli(["--dir", tempDir(), "--retries", "x"])).code).toBe(2);
    const unknown = await cli(["--variant", "fp64", "--dir", tempDir(), "--manifest", path]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown variant "fp64" (known: fp16)');
    const port = await closedPort();
    const offline = await cli(["--dir", tempDir(), "--manifest", path, "--base-url", `http://127.0.0.1:${port}/sam3`, "--retries", "0"]);
    expect(offline.code).toBe(1);
    expect(offline.stderr.trimEnd().split("\n").at(-1)).toMatch(/^fetch-model: cannot reach 127\.0\.0\.1:\d+: /);
  });
});

describe("models/manifest.json", () => {
  it("parses and maps every variant onto the contract files", () => {
    const m = loadManifest();
    expect(m.source).toBe("https://github.com/jamjamjon/assets/releases/download/sam3/");
    expect(Object.keys(m.variants)).toEqual(expect.arrayContaining(["fp32", "fp16", "q4f16"]));
    expect(m.shared["tokenizer.json"]?.remote).toBe("tokenizer.json");
    for (const [name, v] of Object.entries(m.variants)) {
      expect(Object.keys(v.files).sort(), name).toEqual(MODEL_FILES.filter((f) => f !== "tokenizer.json").sort());
      for (const [local, f] of Object.entries(v.files)) {
        expect(f.remote, name).toBe(name === "fp32" ? local : local.replace(/\.onnx$/, `-${name}.onnx`));
      }
    }
  });

  it("rejects remote names that could escape the model directory", () => {
    const bad = structuredClone(testManifest()) as unknown as { shared: Record<string, { remote: string }> };
    bad.shared["tokenizer.json"]!.remote = "../tokenizer.json";
    expect(() => parseManifest(bad)).toThrow(/remote must be a plain file name/);
  });

  it(`does not let a variant overwrite ${LOCAL_MANIFEST} or miss a contract file`, () => {
    const m = structuredClone(testManifest()) as { variants: Record<string, { files: Record<string, unknown> }> };
    delete m.variants.fp16!.files["text-encoder.onnx"];
    expect(() => parseManifest(m)).toThrow(/lacks text-encoder\.onnx/);
    const sidecar = structuredClone(testManifest()) as unknown as { variants: Record<string, { extra: { remote: string }[] }> };
    sidecar.variants.fp16!.extra[0]!.remote = LOCAL_MANIFEST;
    expect(() => parseManifest(sidecar)).toThrow(/stores two files under one name/);
  });
});
