/**
 * The local one-shot (runpod-python's rp_local; api-contract.md section 4): one job from
 * `--test_input '<json>'` or ./test_input.json. stdout carries exactly one JSON document, shaped
 * like a /runsync response; logs go to stderr. Exit 0 when the job completed (error results are
 * COMPLETED too, with output.error); exit 1 when there is no job to run at all.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { jobLimits } from "./config.js";
import type { WorkerConfig } from "./config.js";
import type { EngineClient } from "./engine-client.js";
import { runSegmentationJob } from "./job.js";
import type { Logger } from "./logger.js";
import { jobLogger } from "./logger.js";

export interface LocalTestOptions {
  /** The --test_input value, if given. */
  readonly testInput?: string;
  readonly cwd: string;
  readonly config: WorkerConfig;
  /** Called once the test input is known to be a job, so a typo does not wait for a model load. */
  readonly createEngine: () => EngineClient;
  readonly log: Logger;
  readonly stdout: NodeJS.WritableStream;
}

export async function runLocalTest(options: LocalTestOptions): Promise<number> {
  const { log } = options;
  let text = options.testInput;
  if (text === undefined) {
    const path = join(options.cwd, "test_input.json");
    try {
      text = await readFile(path, "utf8");
    } catch {
      log.warn("test_input.json not found, exiting.");
      return 1;
    }
  }
  let job: unknown;
  try {
    job = JSON.parse(text);
  } catch (err) {
    log.error(`test input is not valid JSON: ${(err as Error).message}`);
    return 1;
  }
  if (typeof job !== "object" || job === null || !("input" in job)) {
    log.error('test input has no "input": expected {"input": {...}}');
    return 1;
  }
  const record = job as { id?: unknown; input: unknown };
  const id = typeof record.id === "string" && record.id ? record.id : "local_test";
  const started = performance.now();
  const engine = options.createEngine();
  let outcome;
  try {
    outcome = await runSegmentationJob(record.input, { engine, limits: jobLimits(options.config), log: jobLogger(log, id) });
  } finally {
    await engine.close();
  }
  const response = { id, status: "COMPLETED", output: outcome, executionTime: Math.round(performance.now() - started) };
  await new Promise<void>((resolve, reject) => options.stdout.write(JSON.stringify(response) + "\n", (err) => (err ? reject(err) : resolve())));
  return 0;
}
