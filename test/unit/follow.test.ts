import { afterAll, afterEach, expect, test } from "bun:test";
import { appendFileSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { followFile } from "../../lib/logs.ts";
import { cleanupTempDirs, tempDir } from "../helpers/unit.ts";

afterAll(cleanupTempDirs);
const savedState = process.env.XDG_STATE_HOME;
afterEach(() => {
  if (savedState === undefined) delete process.env.XDG_STATE_HOME;
  else process.env.XDG_STATE_HOME = savedState;
});

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !check(); i++) await Bun.sleep(20);
}

test("`bottle logs -f` follows the gate's rotation: the old file's last lines, then the new file from its start", async () => {
  process.env.XDG_STATE_HOME = tempDir();
  const logs = join(process.env.XDG_STATE_HOME, "bottle", "bottles", "bottle-f", "logs");
  mkdirSync(logs, { recursive: true });
  const path = join(logs, "egress.jsonl");
  writeFileSync(path, "old-1\n");
  const seen: string[] = [];
  let stop = () => {};
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  const following = followFile(path, (text) => seen.push(...text.split("\n").filter(Boolean)), stopped);
  await Bun.sleep(50);
  appendFileSync(path, "old-2\n");
  await until(() => seen.length === 1);
  // Written just before the rotation, not read yet: the gate renames the file to .1 and starts a new one.
  appendFileSync(path, "old-3\n");
  renameSync(path, `${path}.1`);
  writeFileSync(path, "new-1\npart");
  await until(() => seen.length === 3);
  appendFileSync(path, "ial\n");
  await until(() => seen.length === 4);
  stop();
  expect(await following).toBe(0);
  expect(seen).toEqual(["old-2", "old-3", "new-1", "partial"]);
});
