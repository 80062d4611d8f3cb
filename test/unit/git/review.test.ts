import { afterAll, describe, expect, test } from "bun:test";
import { splitArgs } from "../../../lib/cli/args.ts";
import { BottleError } from "../../../lib/errors.ts";
import { findBranch, forgetBranch, readBranches, recordBranch, type BottleBranch } from "../../../lib/git/registry.ts";
import { applyWork, mergeWork, workOf, type Scan } from "../../../lib/git/review.ts";
import { recordingExec } from "../../helpers/exec.ts";
import { caught, cleanupTempDirs, freshStateDirEachTest } from "../../helpers/unit.ts";

afterAll(cleanupTempDirs);

freshStateDirEachTest();

const work: BottleBranch = { repo: "/repo", branch: "bottle/dev", bottle: "bottle-dev", base: "a".repeat(40), mode: "branch", createdAt: "2026-01-01T00:00:00.000Z" };
const clean: Scan = async () => [];

/** The git subcommand of a recorded host git argv (after -C and the -c options). */
function subcommand(argv: string[]): string {
  for (let i = 1; i < argv.length; i++) {
    if (argv[i] === "-C" || argv[i] === "-c") i++;
    else return argv[i]!;
  }
  return "";
}

describe("the registry of bottle branches", () => {
  test("recorded per repository and branch (a later record replaces), found by bottle or branch name, forgotten", () => {
    recordBranch(work);
    recordBranch({ ...work, base: "b".repeat(40) });
    recordBranch({ ...work, repo: "/other" });
    expect(readBranches()).toHaveLength(2);
    expect(findBranch("/repo", "bottle-dev")?.base).toBe("b".repeat(40));
    expect(findBranch("/repo", "bottle/dev")?.bottle).toBe("bottle-dev");
    expect(findBranch("/repo", "nope")).toBeUndefined();
    forgetBranch("/repo", "bottle/dev");
    expect(readBranches().map((entry) => entry.repo)).toEqual(["/other"]);
  });

  test("an unknown name is one error with the names there are", () => {
    recordBranch(work);
    const error = (() => {
      try {
        workOf("/repo", "bottle-deb");
      } catch (thrown) {
        return thrown as BottleError;
      }
    })()!;
    expect(error.message).toContain("no bottle branch bottle-deb in /repo");
    expect(error.message).toContain("did you mean bottle-dev");
  });
});

describe("merge", () => {
  test("runs git with hooks off; a dirty tree is refused before anything else", async () => {
    const exec = recordingExec((argv) => (subcommand(argv) === "status" ? { stdout: " M README.md\n" } : undefined));
    const error = (await caught(mergeWork(exec, work, { scan: clean }))) as BottleError;
    expect(error.message).toContain("has uncommitted changes: nothing was merged");
    expect(exec.calls.map((call) => subcommand(call.argv))).toEqual(["status"]);
    expect(exec.calls[0]!.argv).toEqual(expect.arrayContaining(["core.hooksPath=/dev/null"]));
  });

  test("a secret the scan finds refuses the merge; nothing is merged", async () => {
    const exec = recordingExec((argv) => (subcommand(argv) === "rev-list" ? { stdout: "2\n" } : subcommand(argv) === "rev-parse" ? { stdout: "/repo/.git\n" } : undefined));
    let scanned: unknown[] = [];
    const scan: Scan = async (...args) => {
      scanned = args;
      return [{ file: "config.ini", line: 1, rule: "aws-access-token", description: "AWS", commit: "c".repeat(40) }];
    };
    const error = (await caught(mergeWork(exec, work, { scan }))) as BottleError;
    expect(error.message).toContain("gitleaks found 1 secret(s) in bottle/dev's commits: nothing was merged");
    expect(error.message).toContain("config.ini:1  rule aws-access-token");
    expect(scanned).toEqual(["/repo/.git", "refs/heads/bottle/dev", ["HEAD"]]);
    expect(exec.calls.some((call) => subcommand(call.argv) === "merge")).toBe(false);
  });

  test("a conflict is undone (merge --abort; a squash: reset --merge) and the files named", async () => {
    for (const squash of [false, true]) {
      const exec = recordingExec((argv) => {
        const sub = subcommand(argv);
        if (sub === "rev-list") return { stdout: "1\n" };
        if (sub === "merge" && !argv.includes("--abort")) return { exitCode: 1, stderr: "CONFLICT (content): Merge conflict in story.txt" };
        if (sub === "diff") return { stdout: "story.txt\n" };
        return undefined;
      });
      const error = (await caught(mergeWork(exec, work, { squash, scan: clean }))) as BottleError;
      expect(error.message).toBe("bottle/dev conflicts with your current branch in story.txt: nothing was merged");
      const undo = exec.calls.at(-1)!.argv;
      expect(undo.slice(-2)).toEqual(squash ? ["reset", "-q", "--merge"].slice(-2) : ["merge", "--abort"]);
    }
  });

  test("nothing new is said so", async () => {
    const exec = recordingExec((argv) => (subcommand(argv) === "rev-list" ? { stdout: "0\n" } : undefined));
    expect(((await caught(mergeWork(exec, work, { scan: clean }))) as BottleError).message).toContain("has nothing your current branch does not have");
  });
});

describe("apply", () => {
  test("a patch that does not apply changes nothing and says how else to take the work", async () => {
    const exec = recordingExec((argv) => {
      const sub = subcommand(argv);
      if (sub === "diff") return { stdout: "diff --git a/x b/x\n" };
      if (sub === "apply") return { exitCode: 1, stderr: "error: patch failed: x:1" };
      return undefined;
    });
    const error = (await caught(applyWork(exec, work, { scan: clean }))) as BottleError;
    expect(error.message).toContain("do not apply to your tree: nothing was applied");
    expect(error.fix).toContain("bottle merge bottle-dev");
    const diff = exec.calls.find((call) => subcommand(call.argv) === "diff")!.argv;
    expect(diff).toEqual(expect.arrayContaining(["--binary", "--no-ext-diff", "--no-textconv", work.base, "refs/heads/bottle/dev"]));
  });
});

describe("flags whose value may be left out", () => {
  test("--branch and --resume before another flag or at the end get an empty value; with one they keep it", () => {
    expect(splitArgs(["up", "--branch", "--detach"]).own).toEqual(["up", "--branch=", "--detach"]);
    expect(splitArgs(["up", "--resume"]).own).toEqual(["up", "--resume="]);
    expect(splitArgs(["up", "--branch", "feature", "--", "--resume"])).toMatchObject({ own: ["up", "--branch", "feature"], passthrough: ["--resume"] });
  });
});
