import { afterAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Docker } from "../../lib/docker.ts";
import { BottleError } from "../../lib/errors.ts";
import { checkHomeFormat, HOME_FORMAT, homeLabels, homeVolumeName, keptHomes, removeHomes, touchHome } from "../../lib/homes.ts";
import { stateDir } from "../../lib/paths.ts";
import { recordingExec } from "../helpers/exec.ts";
import { cleanupTempDirs, freshStateDirEachTest } from "../helpers/unit.ts";

afterAll(cleanupTempDirs);

freshStateDirEachTest();

/** `docker volume ls` answering with `volumes` (name → labels), minus those `docker volume rm` removed. */
function volumeDocker(volumes: Record<string, Record<string, string>>) {
  const present = new Map(Object.entries(volumes));
  const exec = recordingExec((argv) => {
    if (argv[1] === "volume" && argv[2] === "ls")
      return {
        stdout: [...present].map(([name, labels]) => JSON.stringify({ Name: name, Labels: Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(",") })).join("\n"),
      };
    if (argv[1] === "volume" && argv[2] === "rm") {
      // Docker refuses a volume in use; the test marks those with a label.
      for (const name of argv.slice(3)) if (present.get(name)?.inUse !== "1") present.delete(name);
      return {};
    }
    return undefined;
  });
  return { docker: new Docker(exec, "docker"), exec };
}

describe("homes", () => {
  test("one volume name per state dir, workspace and agent; the same inputs give the same name", () => {
    const name = homeVolumeName("/p", "a", "/s");
    expect(name).toMatch(/^bottle-home-[0-9a-f]{16}$/);
    expect(homeVolumeName("/p", "a", "/s")).toBe(name);
    expect(new Set([name, homeVolumeName("/q", "a", "/s"), homeVolumeName("/p", "b", "/s"), homeVolumeName("/p", "a", "/t")]).size).toBe(4);
    // The parts are separated: moving a character from one to the next is another home.
    expect(homeVolumeName("/pa", "b", "/s")).not.toBe(homeVolumeName("/p", "ab", "/s"));
  });

  test("labels carry the format, agent, workspace and this state dir", () => {
    expect(homeLabels("/p", "a")).toMatchObject({ "bottle.home": "1", "bottle.home-format": HOME_FORMAT, "bottle.agent": "a", "bottle.workspace": "/p", "bottle.state": stateDir() });
  });

  test("a home of this format, or none yet, passes; another format or none stated is refused with the removal command", () => {
    checkHomeFormat(undefined);
    checkHomeFormat({ name: "v", labels: { "bottle.home-format": HOME_FORMAT } });
    for (const labels of [{ "bottle.home-format": "0" }, {}] as Record<string, string>[]) {
      const error = (() => {
        try {
          checkHomeFormat({ name: "v", labels });
        } catch (caught) {
          return caught;
        }
      })() as BottleError;
      expect(error).toBeInstanceOf(BottleError);
      expect(error.fix).toContain("docker volume rm v");
    }
  });

  test("kept homes are listed from this state dir's volumes, last used first; never-used ones last", async () => {
    const { docker, exec } = volumeDocker({
      old: { "bottle.agent": "a", "bottle.workspace": "/p" },
      fresh: { "bottle.agent": "b", "bottle.workspace": "/q" },
      never: {},
    });
    touchHome("old", new Date("2026-01-01T00:00:00Z"));
    touchHome("fresh", new Date("2026-06-01T00:00:00Z"));
    expect(await keptHomes(docker)).toEqual([
      { volume: "fresh", agent: "b", workspace: "/q", lastUsed: "2026-06-01T00:00:00.000Z" },
      { volume: "old", agent: "a", workspace: "/p", lastUsed: "2026-01-01T00:00:00.000Z" },
      { volume: "never", agent: "?", workspace: "?" },
    ]);
    expect(exec.calls[0]!.argv).toEqual(expect.arrayContaining(["label=bottle.home", `label=bottle.state=${stateDir()}`]));
  });

  test("removal reports only the homes docker removed; a home in use stays, with its last-use record", async () => {
    const { docker } = volumeDocker({ idle: {}, busy: { inUse: "1" } });
    touchHome("idle");
    touchHome("busy");
    expect(await removeHomes(docker, ["idle", "busy"])).toEqual(["idle"]);
    expect(existsSync(join(stateDir(), "homes", "idle"))).toBe(false);
    expect(existsSync(join(stateDir(), "homes", "busy"))).toBe(true);
  });
});
