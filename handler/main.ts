/**
 * Entry point: read the configuration once, then choose the mode as runpod-python does
 * (runpod-worker.md section 1):
 *   --rp_serve_api                                  local Runpod-compatible API server
 *   --test_input '<json>' or no RUNPOD_WEBHOOK_GET_JOB  one local job (./test_input.json)
 *   otherwise                                       the deployed worker loop
 */
import { parseArgs } from "node:util";
import { ConfigError, loadConfig } from "./config.js";
import type { WorkerConfig } from "./config.js";
import { inProcessEngine } from "./engine-client.js";
import { threadEngine } from "./engine-thread-client.js";
import { LocalApiServer } from "./runpod/local-server.js";
import { RunpodWorker } from "./runpod/worker.js";
import { engineSettings } from "./engine-settings.js";
import { runLocalTest } from "./local-test.js";
import { createLogger } from "./logger.js";
import type { Logger } from "./logger.js";
import { isMainModule } from "../engine/module-paths.js";

const USAGE = `usage: node dist/handler/main.js [--test_input '<json>'] [--rp_serve_api [--rp_api_port 8000] [--rp_api_host 127.0.0.1]] [--rp_log_level INFO]`;

export interface Cli {
  readonly testInput?: string;
  readonly serveApi: boolean;
  readonly apiPort: number;
  readonly apiHost: string;
  readonly logLevel?: string;
}

export function parseCli(argv: readonly string[]): Cli {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      test_input: { type: "string" },
      rp_serve_api: { type: "boolean", default: false },
      rp_api_port: { type: "string", default: "8000" },
      rp_api_host: { type: "string", default: "127.0.0.1" },
      rp_api_concurrency: { type: "string" },
      rp_log_level: { type: "string" },
      rp_debugger: { type: "boolean", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  const port = Number(values.rp_api_port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`--rp_api_port must be a port number (got "${values.rp_api_port}")`);
  // runpod-python's --rp_api_concurrency and --rp_debugger are accepted so its command lines work;
  // SAM3_CONCURRENCY sets the concurrency here, and there is no debugger.
  return {
    ...(values.test_input !== undefined ? { testInput: values.test_input } : {}),
    serveApi: values.rp_serve_api ?? false,
    apiPort: port,
    apiHost: values.rp_api_host ?? "127.0.0.1",
    ...(values.rp_log_level ? { logLevel: values.rp_log_level } : {}),
  };
}

function describeModel(config: WorkerConfig, log: Logger): void {
  if (config.modelDirSource === "tiny-fallback") {
    log.warn(`no SAM3 weights in models/sam3 and SAM3_MODEL_DIR unset: using the bundled tiny test model (${config.modelDir}); its masks are not SAM3's`);
  } else {
    log.info(`model directory ${config.modelDir} (${config.modelDirSource === "env" ? "SAM3_MODEL_DIR" : "default"})`);
  }
}

async function main(argv: readonly string[]): Promise<number> {
  let cli: Cli;
  let config: WorkerConfig;
  try {
    cli = parseCli(argv);
    config = loadConfig(process.env, undefined, cli.logLevel ? { logLevel: cli.logLevel } : {});
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const local = !cli.serveApi && (cli.testInput !== undefined || !config.runpod.getJobUrl);
  // In the one-shot, stdout carries the result document, so every log line goes to stderr.
  const log = createLogger({
    level: config.logLevel,
    runpodFormat: config.runpod.endpointId !== undefined,
    secrets: config.runpod.apiKey ? [config.runpod.apiKey] : [],
    destination: local ? process.stderr : process.stdout,
  });
  describeModel(config, log);
  if (local) {
    // One job: the engine in this thread, no warm-up (the job itself is the only run).
    return runLocalTest({
      ...(cli.testInput !== undefined ? { testInput: cli.testInput } : {}),
      cwd: process.cwd(),
      config,
      createEngine: () => inProcessEngine(engineSettings(config, (m) => log.warn(m), false)),
      log,
      stdout: process.stdout,
    });
  }
  if (cli.serveApi) return serveApi(cli, config, log);
  return runWorker(config, log);
}

/** The engine in its own thread, warmed up, with its start-up outcome logged. */
function startEngine(config: WorkerConfig, log: Logger, onFatal?: (err: Error) => void) {
  const engine = threadEngine(engineSettings(config, (m) => log.warn(m), true), onFatal);
  engine.ready.then(
    (device) => log.info(`engine ready on ${device}`),
    (err: Error) => log.error(`engine failed to start; every job will be answered with this error: ${err.message}`),
  );
  return engine;
}

async function runWorker(config: WorkerConfig, log: Logger): Promise<number> {
  let worker: RunpodWorker | undefined;
  const engine = startEngine(config, log, (err) => worker?.engineFailed(err));
  worker = new RunpodWorker({ config, engine, log });
  const w = worker;
  process.on("SIGTERM", () => w.shutdown("SIGTERM"));
  process.on("SIGINT", () => w.shutdown("SIGINT"));
  return w.run();
}

async function serveApi(cli: Cli, config: WorkerConfig, log: Logger): Promise<number> {
  const engine = startEngine(config, log);
  const server = new LocalApiServer({ host: cli.apiHost, port: cli.apiPort, config, engine, log });
  await server.start();
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
  });
  log.info("stopping the local API server");
  await server.close();
  await engine.close();
  return 0;
}

if (isMainModule(import.meta.url)) {
  const code = await main(process.argv.slice(2));
  // Exit explicitly: keep-alive sockets and the engine thread must not hold a finished process open.
  process.exit(code);
}
