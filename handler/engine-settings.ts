import type { EngineSettings } from "../engine/segmenter.js";
import type { WorkerConfig } from "./config.js";

/** The engine's settings from the worker's configuration. */
export function engineSettings(config: WorkerConfig, warn: (message: string) => void, warmUp: boolean): EngineSettings {
  return {
    modelDir: config.modelDir,
    device: config.device,
    maxImagePixels: config.maxImagePixels,
    textCacheSize: config.textCacheSize,
    imageCacheSize: config.imageCacheSize,
    maskConcurrency: config.maskConcurrency,
    decoderBatching: config.decoderBatching,
    ...(config.intraOpThreads ? { intraOpThreads: config.intraOpThreads } : {}),
    allowSpinning: config.allowSpinning,
    warmUp,
    warn,
  };
}
