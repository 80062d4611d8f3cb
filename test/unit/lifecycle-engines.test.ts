import { afterAll, afterEach, beforeEach, expect, spyOn, test } from "bun:test";
import { rememberEngine } from "../../lib/engine.ts";
import { findOrphans, listHomes, staleImagesEverywhere } from "../../lib/lifecycle.ts";
import { log } from "../../lib/log.ts";
import { recordingExec } from "../helpers/exec.ts";
import { cleanupTempDirs, tempDir } from "../helpers/unit.ts";

/** A command that looks at every engine more than once (cleanup) asks a silent one once, and says so once. */

const saved = process.env.XDG_STATE_HOME;
beforeEach(() => {
  process.env.XDG_STATE_HOME = tempDir("bottle-engines-state-");
});
afterEach(() => {
  if (saved === undefined) delete process.env.XDG_STATE_HOME;
  else process.env.XDG_STATE_HOME = saved;
});
afterAll(cleanupTempDirs);

const SILENT = "tcp://silent.test:2376";
/** Every docker call answers empty; the remote engine's `version` times out. */
const engines = () =>
  recordingExec((argv) => (argv.includes(SILENT) && argv.includes("version") ? { exitCode: 1, stderr: "context deadline: timed out" } : undefined));
const asked = (exec: ReturnType<typeof engines>) => exec.calls.filter((call) => call.argv.includes(SILENT) && call.argv.includes("version")).length;

test("orphans, images and homes of one command: the silent engine is asked once and named once; the next command asks again", async () => {
  rememberEngine({ host: SILENT, endpoint: SILENT, remote: true });
  const warn = spyOn(log, "warn").mockImplementation((() => undefined) as unknown as typeof log.warn);
  try {
    const exec = engines();
    await findOrphans(exec);
    await staleImagesEverywhere(exec, {});
    await listHomes(exec);
    expect(asked(exec)).toBe(1);
    expect(warn.mock.calls.map((call) => String(call[0]))).toEqual([`the docker engine ${SILENT} (${SILENT}) does not answer: no answer within 5 s; what is on it is left out`]);
    // Nothing of the silent engine was queried past its check.
    expect(exec.calls.filter((call) => call.argv.includes(SILENT) && !call.argv.includes("version"))).toEqual([]);

    const next = engines();
    await findOrphans(next);
    expect(asked(next)).toBe(1);
  } finally {
    warn.mockRestore();
  }
});
