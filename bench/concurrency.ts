/**
 * Jobs at once (SAM3_CONCURRENCY) measured end to end: the local API server with the engine in its
 * thread, 8 /run jobs whose images come from a loopback server that answers after a delay (a
 * remote image host), for 1, 2 and 3 jobs at once.
 *   npm run build && node dist/bench/concurrency.js [--jobs 8] [--delay-ms 400] [--model-dir DIR]
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { Writable } from "node:stream";
import { parseArgs } from "node:util";
import { findProjectRoot, isMainModule } from "../engine/module-paths.js";
import { loadConfig } from "../handler/config.js";
import { threadEngine } from "../handler/engine-thread-client.js";
import { engineSettings } from "../handler/engine-settings.js";
import { createLogger } from "../handler/logger.js";
import { LocalApiServer } from "../handler/runpod/local-server.js";

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { jobs: { type: "string", default: "8" }, "delay-ms": { type: "string", default: "400" }, "model-dir": { type: "string" } } });
  const root = findProjectRoot();
  const image = readFileSync(join(root, "test/fixtures/room.jpg"));
  const delayMs = Number(values["delay-ms"]);
  const host = createServer((_req, res) => setTimeout(() => res.writeHead(200, { "content-type": "image/jpeg" }).end(image), delayMs));
  await new Promise<void>((resolve) => host.listen(0, "127.0.0.1", resolve));
  const imageUrl = `http://127.0.0.1:${(host.address() as AddressInfo).port}/room.jpg`;
  const log = createLogger({ level: "error", runpodFormat: false, secrets: [], destination: new Writable({ write: (_c, _e, cb) => cb() }) });
  const jobs = Number(values.jobs);
  process.stdout.write(`${jobs} /run jobs, image host delay ${delayMs} ms, room.jpg with wall/door/window\n`);
  for (const concurrency of [1, 2, 3]) {
    const config = loadConfig({
      SAM3_CONCURRENCY: String(concurrency),
      SAM3_ALLOW_PRIVATE_URLS: "1",
      SAM3_DEVICE: "cpu",
      SAM3_IMAGE_CACHE_SIZE: "0",
      ...(values["model-dir"] ? { SAM3_MODEL_DIR: values["model-dir"] } : {}),
    });
    const engine = threadEngine(engineSettings(config, () => undefined, true));
    await engine.ready;
    const server = new LocalApiServer({ host: "127.0.0.1", port: 0, config, engine, log });
    const base = `http://127.0.0.1:${await server.start()}/v2/bench`;
    const started = performance.now();
    const ids = await Promise.all(
      Array.from({ length: jobs }, async () => {
        const res = await fetch(`${base}/run`, { method: "POST", body: JSON.stringify({ input: { image_url: imageUrl, concepts: ["wall", "door", "window"] } }) });
        return ((await res.json()) as { id: string }).id;
      }),
    );
    for (const id of ids) {
      const res = await fetch(`${base}/status-sync/${id}?wait=120000`);
      const job = (await res.json()) as { status: string };
      if (job.status !== "COMPLETED") throw new Error(`job ${id} ended ${job.status}`);
    }
    const seconds = (performance.now() - started) / 1000;
    process.stdout.write(`SAM3_CONCURRENCY=${concurrency}: ${seconds.toFixed(2)} s for ${jobs} jobs, ${(jobs / seconds).toFixed(2)} jobs/s\n`);
    await server.close();
    await engine.close();
  }
  host.close();
}

if (isMainModule(import.meta.url)) {
  await main();
  process.exit(0);
}
