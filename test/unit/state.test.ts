import { afterAll, afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { BottleError } from "../../lib/errors.ts";
import { realExec } from "../../lib/exec.ts";
import { bottleStateDir, stateDir } from "../../lib/paths.ts";
import {
  auditLogPath,
  candidateNames,
  claimName,
  MAX_SUFFIX,
  type Owner,
  peekName,
  processAlive,
  readOwner,
  readPlan,
  removeState,
  stateNames,
  writeState,
} from "../../lib/state.ts";
import { cleanupTempDirs, makePlan, tempDir } from "../helpers/unit.ts";

let saved: string | undefined;
let home: string;

beforeEach(() => {
  saved = process.env.XDG_STATE_HOME;
  home = tempDir("bottle-state-");
  process.env.XDG_STATE_HOME = home;
});

afterEach(() => {
  if (saved === undefined) delete process.env.XDG_STATE_HOME;
  else process.env.XDG_STATE_HOME = saved;
});

afterAll(cleanupTempDirs);

describe("paths under XDG_STATE_HOME", () => {
  test("the state dir follows the variable at call time", () => {
    expect(stateDir()).toBe(join(home, "bottle"));
    expect(bottleStateDir("bottle-x")).toBe(join(home, "bottle", "bottles", "bottle-x"));
    expect(auditLogPath("bottle-x", "egress")).toBe(join(home, "bottle", "bottles", "bottle-x", "logs", "egress.jsonl"));
  });
});

describe("candidateNames", () => {
  test("the base, then -2 … -MAX_SUFFIX", () => {
    const names = candidateNames("bottle-x");
    expect(names).toHaveLength(MAX_SUFFIX);
    expect(names.slice(0, 3)).toEqual(["bottle-x", "bottle-x-2", "bottle-x-3"]);
    expect(names.at(-1)).toBe(`bottle-x-${MAX_SUFFIX}`);
  });
});

describe("claimName", () => {
  test("claims the base name first and creates its state dir", () => {
    expect(claimName("bottle-x", new Set())).toBe("bottle-x");
    expect(statSync(bottleStateDir("bottle-x")).isDirectory()).toBe(true);
    expect(claimName("bottle-x", new Set())).toBe("bottle-x-2");
  });

  test("many concurrent claims get distinct names", async () => {
    const claims = await Promise.all(Array.from({ length: 12 }, async () => claimName("bottle-x", new Set())));
    expect(new Set(claims).size).toBe(12);
    expect([...claims].sort()).toEqual(candidateNames("bottle-x").slice(0, 12).sort());
    expect(stateNames().sort()).toEqual([...claims].sort());
  });

  test("concurrent claims from separate processes never share a name", async () => {
    const stateModule = resolve(import.meta.dir, "../../lib/state.ts");
    const code = `const { claimName } = await import(${JSON.stringify(stateModule)});
const names = [];
for (let i = 0; i < 15; i++) names.push(claimName("bottle-race", new Set()));
console.log(JSON.stringify(names));`;
    const runs = await Promise.all(
      Array.from({ length: 6 }, () => realExec.run([process.execPath, "-e", code], { env: { XDG_STATE_HOME: home }, timeoutMs: 30_000 })),
    );
    const names = runs.flatMap((run) => JSON.parse(run.stdout.trim()) as string[]);
    expect(names).toHaveLength(90);
    expect(new Set(names).size).toBe(90);
    expect(new Set(names)).toEqual(new Set(candidateNames("bottle-race").slice(0, 90)));
  }, 60_000);

  test("skips names docker reports as taken, and names in skip", () => {
    expect(claimName("bottle-x", new Set(["bottle-x", "bottle-x-2"]))).toBe("bottle-x-3");
    expect(existsSync(bottleStateDir("bottle-x"))).toBe(false);
    expect(claimName("bottle-x", new Set(), new Set(["bottle-x"]))).toBe("bottle-x-2");
  });

  test("fails with a BottleError once every candidate is used", () => {
    const taken = new Set(candidateNames("bottle-x").slice(1));
    expect(claimName("bottle-x", taken)).toBe("bottle-x");
    let error: unknown;
    try {
      claimName("bottle-x", taken);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(BottleError);
    expect((error as BottleError).message).toBe(`${MAX_SUFFIX} bottles named bottle-x already exist`);
    expect((error as BottleError).fix).toContain("bottle down");
  });
});

describe("peekName", () => {
  test("returns the first free name and creates nothing", () => {
    expect(peekName("bottle-x", new Set())).toBe("bottle-x");
    expect(existsSync(stateDir())).toBe(false);
    expect(readdirSync(home)).toEqual([]);
  });

  test("skips names taken by docker or claimed on disk", () => {
    claimName("bottle-x", new Set());
    expect(peekName("bottle-x", new Set())).toBe("bottle-x-2");
    expect(peekName("bottle-x", new Set(["bottle-x-2"]))).toBe("bottle-x-3");
    expect(existsSync(bottleStateDir("bottle-x-2"))).toBe(false);
  });

  test("throws when everything is taken", () => {
    expect(() => peekName("bottle-x", new Set(candidateNames("bottle-x")))).toThrow(BottleError);
  });
});

describe("writeState / readPlan / readOwner", () => {
  const owner: Owner = { pid: 4242, detach: true, startedAt: "2024-01-01T00:00:00.000Z" };

  test("round trip", () => {
    const plan = makePlan({ name: "bottle-rt", agent: { model: "claude-x", hasPrompt: true }, gitUser: { name: "Ada" } });
    writeState(plan, owner);
    expect(readPlan("bottle-rt")).toEqual(plan);
    expect(readOwner("bottle-rt")).toEqual(owner);
    expect(statSync(join(bottleStateDir("bottle-rt"), "logs")).isDirectory()).toBe(true);
    expect(stateNames()).toEqual(["bottle-rt"]);
  });

  test("the state files are private (0600)", () => {
    writeState(makePlan({ name: "bottle-priv" }), owner);
    for (const file of ["plan.json", "owner.json"]) {
      expect(statSync(join(bottleStateDir("bottle-priv"), file)).mode & 0o777).toBe(0o600);
    }
  });

  test("writing into an already claimed dir works", () => {
    const name = claimName("bottle-claimed", new Set());
    writeState(makePlan({ name }), owner);
    expect(readPlan(name)?.name).toBe(name);
  });

  test("missing, broken or invalid state reads as undefined", () => {
    expect(readPlan("bottle-none")).toBeUndefined();
    expect(readOwner("bottle-none")).toBeUndefined();
    writeState(makePlan({ name: "bottle-bad" }), owner);
    writeFileSync(join(bottleStateDir("bottle-bad"), "plan.json"), "{ truncated");
    expect(readPlan("bottle-bad")).toBeUndefined();
    writeFileSync(join(bottleStateDir("bottle-bad"), "plan.json"), JSON.stringify({ version: 1, name: "bottle-bad" }));
    expect(readPlan("bottle-bad")).toBeUndefined();
  });

  test("removeState deletes the dir and frees the name", () => {
    writeState(makePlan({ name: "bottle-x" }), owner);
    removeState("bottle-x");
    expect(existsSync(bottleStateDir("bottle-x"))).toBe(false);
    expect(stateNames()).toEqual([]);
    expect(claimName("bottle-x", new Set())).toBe("bottle-x");
    removeState("bottle-never-existed"); // no throw
  });

  test("stateNames is empty before anything was written", () => {
    expect(stateNames()).toEqual([]);
  });
});

describe("processAlive", () => {
  test("true for this process, false for one that has exited", async () => {
    expect(processAlive(process.pid)).toBe(true);
    const child = Bun.spawn(["true"]);
    await child.exited;
    expect(processAlive(child.pid)).toBe(false);
  });

  test("true for a running child", async () => {
    const child = Bun.spawn(["sleep", "30"]);
    try {
      expect(processAlive(child.pid)).toBe(true);
    } finally {
      child.kill("SIGKILL");
      await child.exited;
    }
    expect(processAlive(child.pid)).toBe(false);
  });
});
