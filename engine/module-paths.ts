import { existsSync, realpathSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

/**
 * The directory holding package.json, found upward from this file, so that paths such as
 * models/tiny resolve the same from TypeScript sources (tests) and compiled dist/ files.
 */
export function findProjectRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json"))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}`);
  }
}

/**
 * True when the module at `moduleUrl` is the script node was started with, also when it was
 * started through a symlink (npx and npm bin links point at the compiled file).
 */
export function isMainModule(moduleUrl: string): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return realpathSync(fileURLToPath(moduleUrl)) === realpathSync(entry);
  } catch {
    return moduleUrl === pathToFileURL(entry).href;
  }
}
