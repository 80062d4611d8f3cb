import { mkdirSync, rmSync, statSync } from "node:fs";
import { dirname } from "node:path";

/**
 * A cross-process lock from an atomic `mkdir`. Only used around rare, slow
 * steps (image builds), so waiting by polling is acceptable there.
 */
const STALE_MS = 20 * 60 * 1000;

export async function withLock<T>(path: string, work: () => Promise<T>): Promise<T> {
  mkdirSync(dirname(path), { recursive: true });
  for (;;) {
    try {
      mkdirSync(path);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      try {
        if (Date.now() - statSync(path).mtimeMs > STALE_MS) rmSync(path, { recursive: true, force: true });
      } catch {
        // Released meanwhile.
      }
      await Bun.sleep(250);
    }
  }
  try {
    return await work();
  } finally {
    rmSync(path, { recursive: true, force: true });
  }
}
