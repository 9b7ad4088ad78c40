import { join } from "node:path";
import { DEFAULT_ENGINE_SETTINGS, Sam3Engine } from "../../engine/segmenter.js";
import type { EngineSettings } from "../../engine/segmenter.js";
import { findProjectRoot } from "../../engine/module-paths.js";
import { COARSE_COL_EDGES, COARSE_ROW_EDGES, COARSE_SCORES, PRESENCE_LOGIT } from "../../models/tiny-generator/layout.js";
import type { Rect } from "./masks.js";

export const ROOT = findProjectRoot();
export const TINY_DIR = join(ROOT, "models/tiny");
export const FIXTURES = join(ROOT, "test/fixtures");

export function tinySettings(overrides: Partial<EngineSettings> = {}): EngineSettings {
  return { ...DEFAULT_ENGINE_SETTINGS, modelDir: TINY_DIR, device: "cpu", warmUp: false, warn: () => undefined, ...overrides };
}

export function createTinyEngine(overrides: Partial<EngineSettings> = {}): Promise<Sam3Engine> {
  return Sam3Engine.create(tinySettings(overrides));
}

/** The tiny model's coarse cells in pixels of a width x height image, with their scores once found. */
export function coarseCells(width: number, height: number): { rect: Rect; score: number }[] {
  const cells: { rect: Rect; score: number }[] = [];
  const presence = 1 / (1 + Math.exp(-PRESENCE_LOGIT));
  for (let r = 0; r + 1 < COARSE_ROW_EDGES.length; r++) {
    for (let c = 0; c + 1 < COARSE_COL_EDGES.length; c++) {
      cells.push({
        rect: [
          (COARSE_COL_EDGES[c]! / 288) * width,
          (COARSE_ROW_EDGES[r]! / 288) * height,
          (COARSE_COL_EDGES[c + 1]! / 288) * width,
          (COARSE_ROW_EDGES[r + 1]! / 288) * height,
        ],
        score: COARSE_SCORES[r * (COARSE_COL_EDGES.length - 1) + c]! * presence,
      });
    }
  }
  return cells;
}
