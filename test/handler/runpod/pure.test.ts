/**
 * The pure parts of the Runpod protocol: URL templates and query joining (runpod-worker.md
 * section 3), backoff bounds, and the posted body shapes (section 5, api-contract.md section 2).
 */
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../../handler/config.js";
import { backoffDelay, sleep } from "../../../handler/runpod/backoff.js";
import { addQuery, batchTakeUrl, fillTemplate, jobStopUrl } from "../../../handler/runpod/urls.js";
import { resultBody } from "../../../handler/runpod/worker.js";

describe("fillTemplate", () => {
  const ctx = { workerId: "pod-abc" };

  it("substitutes $RUNPOD_POD_ID and then $ID", () => {
    expect(fillTemplate("https://api.runpod.ai/v2/ep/job-done/$RUNPOD_POD_ID/$ID?gpu=A", ctx, "job-1")).toBe("https://api.runpod.ai/v2/ep/job-done/pod-abc/job-1?gpu=A");
    // The take, stop and ping templates use $ID for the worker id (runpod-python's GET_JOB).
    expect(fillTemplate("http://h/v2/ep/job-take/$ID", ctx, ctx.workerId)).toBe("http://h/v2/ep/job-take/pod-abc");
    expect(fillTemplate("http://h/v2/ep/job-take/$RUNPOD_POD_ID", ctx, ctx.workerId)).toBe("http://h/v2/ep/job-take/pod-abc");
  });

  it("substitutes every occurrence", () => {
    expect(fillTemplate("http://h/$ID/$ID/$RUNPOD_POD_ID/$RUNPOD_POD_ID", ctx, "j")).toBe("http://h/j/j/pod-abc/pod-abc");
  });

  it("substitutes $RUNPOD_GPU_TYPE_ID, URL-encoded, only when it is known", () => {
    const template = "http://0.0.0.0:80/v2/IDE/job-done/$RUNPOD_POD_ID/$ID?gpu=$RUNPOD_GPU_TYPE_ID";
    expect(fillTemplate(template, { workerId: "w", gpuTypeId: "NVIDIA GeForce RTX 4090" }, "j")).toBe("http://0.0.0.0:80/v2/IDE/job-done/w/j?gpu=NVIDIA%20GeForce%20RTX%204090");
    expect(fillTemplate(template, { workerId: "w" }, "j")).toBe("http://0.0.0.0:80/v2/IDE/job-done/w/j?gpu=$RUNPOD_GPU_TYPE_ID");
    expect(fillTemplate(template, { workerId: "w", gpuTypeId: "" }, "j")).toBe("http://0.0.0.0:80/v2/IDE/job-done/w/j?gpu=$RUNPOD_GPU_TYPE_ID");
  });

  it("leaves a template without placeholders alone", () => {
    expect(fillTemplate("http://h/v2/ep/ping/x?gpu=A", ctx, "j")).toBe("http://h/v2/ep/ping/x?gpu=A");
  });
});

describe("addQuery", () => {
  it("starts the query with ? when the URL has none", () => {
    expect(addQuery("http://0.0.0.0:80/v2/IDE/job-take/w", { job_in_progress: 0 })).toBe("http://0.0.0.0:80/v2/IDE/job-take/w?job_in_progress=0");
  });

  it("joins with & when the URL has a query (production's ?gpu=)", () => {
    expect(addQuery("https://api.runpod.ai/v2/ep/job-take/w?gpu=NVIDIA+RTX+A5000", { job_in_progress: 1 })).toBe("https://api.runpod.ai/v2/ep/job-take/w?gpu=NVIDIA+RTX+A5000&job_in_progress=1");
    expect(addQuery("http://h/p?a=1", { isStream: "false" })).toBe("http://h/p?a=1&isStream=false");
  });

  it("adds no extra separator after a trailing ? or &", () => {
    expect(addQuery("http://h/p?", { a: 1 })).toBe("http://h/p?a=1");
    expect(addQuery("http://h/p?x=1&", { a: 1 })).toBe("http://h/p?x=1&a=1");
  });

  it("keeps parameter order, encodes values and keeps a fragment last", () => {
    expect(addQuery("http://h/p", { job_id: "a,b", runpod_version: "1.12.0" })).toBe("http://h/p?job_id=a%2Cb&runpod_version=1.12.0");
    expect(addQuery("http://h/p#frag", { a: "x y" })).toBe("http://h/p?a=x+y#frag");
    expect(new URL(addQuery("http://h/p?gpu=A", { job_id: "a,b" })).searchParams.get("job_id")).toBe("a,b");
  });

  it("leaves the URL alone when there is nothing to add", () => {
    expect(addQuery("http://h/p?gpu=A", {})).toBe("http://h/p?gpu=A");
  });
});

describe("job-stop and batch URLs", () => {
  it("swap /job-take/ and keep the query", () => {
    expect(jobStopUrl("https://api.runpod.ai/v2/ep/job-take/w?gpu=A")).toBe("https://api.runpod.ai/v2/ep/job-stop/w?gpu=A");
    expect(batchTakeUrl("https://api.runpod.ai/v2/ep/job-take/w?gpu=A")).toBe("https://api.runpod.ai/v2/ep/job-take-batch/w?gpu=A");
  });

  it("are absent when the take URL has no /job-take/", () => {
    expect(jobStopUrl("http://h/v2/ep/get-job/w")).toBeUndefined();
    expect(batchTakeUrl("http://h/v2/ep/get-job/w")).toBeUndefined();
  });
});

describe("backoffDelay", () => {
  const policy = { baseMs: 1_000, capMs: 30_000 };

  it("doubles from the base up to the cap, with jitter between half and all of it", () => {
    const lowest = (n: number) => backoffDelay(n, { ...policy, random: () => 0 });
    const highest = (n: number) => backoffDelay(n, { ...policy, random: () => 0.999999 });
    expect([0, 1, 2, 3, 4, 5, 6].map(highest)).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]);
    expect([0, 1, 2, 3, 4, 5, 6].map(lowest)).toEqual([500, 1_000, 2_000, 4_000, 8_000, 15_000, 15_000]);
  });

  it("stays within [ceiling/2, ceiling] for any attempt, huge ones included", () => {
    for (let attempt = 0; attempt < 2_000; attempt++) {
      const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** attempt);
      const d = backoffDelay(attempt, policy);
      expect(Number.isFinite(d)).toBe(true);
      expect(d).toBeGreaterThanOrEqual(ceiling / 2);
      expect(d).toBeLessThanOrEqual(ceiling);
    }
    expect(backoffDelay(Number.MAX_SAFE_INTEGER, policy)).toBeLessThanOrEqual(30_000);
  });

  it("is never zero for a positive base (no hot loop)", () => {
    expect(backoffDelay(0, { baseMs: 100, capMs: 100, random: () => 0 })).toBe(50);
  });
});

describe("sleep", () => {
  it("ends early when its signal fires and at once when already aborted", async () => {
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 20);
    await sleep(10_000, controller.signal);
    expect(Date.now() - started).toBeLessThan(5_000);
    await sleep(10_000, controller.signal);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

describe("resultBody", () => {
  const payload = { image_size: [800, 533] as [number, number], results: { door: { instance_count: 0, masks_base64: [], scores: [], boxes: [] } } };

  it("nests a success as {output: {output: payload}}", () => {
    const body = resultBody({ output: payload }, false);
    expect(body).toEqual({ output: { output: payload } });
    expect(JSON.parse(JSON.stringify(body))).toEqual({ output: { output: payload } });
  });

  it("puts an error under output, never at the top level", () => {
    const body = resultBody({ error: "Failed to download image: HTTP 404" }, false);
    expect(body).toEqual({ output: { error: "Failed to download image: HTTP 404" } });
    expect(Object.keys(body)).toEqual(["output"]);
  });

  it("adds stopPod only when asked", () => {
    expect(resultBody({ error: "Segmentation failed: x" }, true)).toEqual({ output: { error: "Segmentation failed: x" }, stopPod: true });
    expect(resultBody({ output: payload }, true)).toEqual({ output: { output: payload }, stopPod: true });
  });
});

describe("loadConfig: the Runpod settings", () => {
  it("maps the platform's variables, with RUNPOD_POD_ID as the worker id", () => {
    const config = loadConfig({
      RUNPOD_WEBHOOK_GET_JOB: "http://h/v2/ep/job-take/$RUNPOD_POD_ID",
      RUNPOD_WEBHOOK_POST_OUTPUT: "http://h/v2/ep/job-done/$RUNPOD_POD_ID/$ID",
      RUNPOD_WEBHOOK_PING: "http://h/v2/ep/ping/$RUNPOD_POD_ID",
      RUNPOD_PING_INTERVAL: "4000",
      RUNPOD_AI_API_KEY: "key",
      RUNPOD_POD_ID: "pod-9",
      RUNPOD_GPU_TYPE_ID: "NVIDIA A40",
      RUNPOD_ENDPOINT_ID: "ep",
    });
    expect(config.runpod).toEqual({
      getJobUrl: "http://h/v2/ep/job-take/$RUNPOD_POD_ID",
      postOutputUrl: "http://h/v2/ep/job-done/$RUNPOD_POD_ID/$ID",
      pingUrl: "http://h/v2/ep/ping/$RUNPOD_POD_ID",
      pingIntervalMs: 4000,
      apiKey: "key",
      workerId: "pod-9",
      podId: "pod-9",
      gpuTypeId: "NVIDIA A40",
      endpointId: "ep",
    });
  });

  it("falls back to a random worker id and a 10 s ping interval; empty values count as unset", () => {
    const config = loadConfig({ RUNPOD_POD_ID: "", RUNPOD_AI_API_KEY: "", RUNPOD_WEBHOOK_PING: "" });
    expect(config.runpod.workerId).toMatch(/^[0-9a-f-]{36}$/);
    expect(config.runpod.podId).toBeUndefined();
    expect(config.runpod.apiKey).toBeUndefined();
    expect(config.runpod.pingUrl).toBeUndefined();
    expect(config.runpod.pingIntervalMs).toBe(10_000);
    expect(loadConfig({}).runpod.workerId).not.toBe(config.runpod.workerId);
  });

  it("rejects a bad ping interval, concurrency or drain timeout by name", () => {
    expect(() => loadConfig({ RUNPOD_PING_INTERVAL: "soon" })).toThrow(/RUNPOD_PING_INTERVAL/);
    expect(() => loadConfig({ SAM3_CONCURRENCY: "0" })).toThrow(/SAM3_CONCURRENCY/);
    expect(() => loadConfig({ SAM3_DRAIN_TIMEOUT_MS: "-1" })).toThrow(/SAM3_DRAIN_TIMEOUT_MS/);
  });
});
