import { BottleError } from "../errors.ts";
import type { Exec } from "../exec.ts";
import { didYouMean } from "../suggest.ts";
import { hostGit } from "./bottle-branch.ts";
import { type BottleBranch, readBranches } from "./registry.ts";

/**
 * Taking a bottle's work, on the host, whatever its workspace mode: every
 * bottle's commits arrive on a branch of its own (bottle-branch.ts), written
 * down with where it started (registry.ts). `diff`, `log`, `merge`, `apply`
 * and `branches` read that. The host's git runs with hooks off and no
 * external diff or textconv: the branch's content is the agent's, and a hook
 * or driver in the working tree must not run it.
 */

/** Git with the safety every verb shares. */
function git(exec: Exec, repo: string, args: string[], options: { check?: boolean; stdin?: string | Uint8Array } = {}) {
  return hostGit(exec, repo, ["-c", "core.hooksPath=/dev/null", ...args], options);
}

/** The top level of the repository `path` is in, or undefined outside one. */
export async function repositoryTop(exec: Exec, path: string): Promise<string | undefined> {
  const out = await exec.run(["git", "-C", path, "rev-parse", "--show-toplevel"], { check: false });
  return out.exitCode === 0 ? out.stdout.trim() || undefined : undefined;
}

/** The repository a command runs in: its top level. */
export async function currentRepo(exec: Exec, cwd: string): Promise<string> {
  const top = await repositoryTop(exec, cwd);
  if (!top) throw new BottleError(`${cwd} is not in a git repository`, { fix: "run this in the repository the bottle worked on" });
  return top;
}

/** A bottle's branch in `repo`, by the bottle's name or the branch's. */
export function workOf(repo: string, name: string): BottleBranch {
  const entries = readBranches().filter((entry) => entry.repo === repo);
  const found = entries.findLast((entry) => entry.bottle === name) ?? entries.find((entry) => entry.branch === name);
  if (found) return found;
  const names = [...new Set(entries.flatMap((entry) => [entry.bottle, entry.branch]))];
  throw new BottleError(`no bottle branch ${name} in ${repo}${didYouMean(name, names)}`, {
    fix: entries.length ? `see \`bottle branches\`` : "a bottle's commits come back on its branch when it stops, or with `bottle fetch NAME`",
  });
}

export interface BranchRow extends BottleBranch {
  /** The branch is still in the repository. */
  exists: boolean;
  /** Its commits that its base does not have. */
  ahead: number;
  /** When its last commit was made (ISO). */
  lastChange?: string;
  running: boolean;
}

/** Every bottle branch of `repo`, newest first, with how far it got. */
export async function listBranches(exec: Exec, repo: string, running: ReadonlySet<string>): Promise<BranchRow[]> {
  const entries = readBranches().filter((entry) => entry.repo === repo);
  const rows = await Promise.all(
    entries.map(async (entry): Promise<BranchRow> => {
      const tip = await git(exec, repo, ["log", "-1", "--format=%H %cI", `refs/heads/${entry.branch}`, "--"], { check: false });
      const [commit, date] = tip.stdout.trim().split(" ");
      if (tip.exitCode !== 0 || !commit) return { ...entry, exists: false, ahead: 0, running: running.has(entry.bottle) };
      const ahead = await git(exec, repo, ["rev-list", "--count", `${entry.base}..${commit}`], { check: false });
      return { ...entry, exists: true, ahead: Number(ahead.stdout.trim()) || 0, ...(date ? { lastChange: date } : {}), running: running.has(entry.bottle) };
    }),
  );
  return rows.sort((a, b) => (b.lastChange ?? b.createdAt).localeCompare(a.lastChange ?? a.createdAt));
}

export function formatBranches(rows: BranchRow[]): string {
  if (!rows.length) return "no bottle branches in this repository";
  const table = [["BRANCH", "BOTTLE", "MODE", "AHEAD", "LAST CHANGE"], ...rows.map((row) => [row.branch, `${row.bottle}${row.running ? " (running)" : ""}`, row.mode, row.exists ? String(row.ahead) : "gone", row.lastChange ?? "-"])];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  return table.map((row) => row.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n");
}

/** `bottle diff`: what the branch changes against where it started. */
export async function diffWork(exec: Exec, work: BottleBranch, options: { stat?: boolean; paths?: string[] } = {}): Promise<string> {
  const args = ["diff", "--no-ext-diff", "--no-textconv", ...(options.stat ? ["--stat"] : []), work.base, `refs/heads/${work.branch}`, "--", ...(options.paths ?? [])];
  return (await git(exec, work.repo, args)).stdout;
}

export interface WorkCommit {
  commit: string;
  author: string;
  date: string;
  subject: string;
}

/** `bottle log`: the branch's commits since it started, newest first. */
export async function logWork(exec: Exec, work: BottleBranch): Promise<WorkCommit[]> {
  const out = await git(exec, work.repo, ["log", "--format=%H%x00%an%x00%aI%x00%s", `${work.base}..refs/heads/${work.branch}`, "--"]);
  return out.stdout
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [commit = "", author = "", date = "", subject = ""] = line.split("\0");
      return { commit, author, date, subject };
    });
}

/** Refuses a tree with uncommitted changes to tracked files: merge and apply leave nothing half-done. */
async function requireClean(exec: Exec, repo: string, verb: string): Promise<void> {
  const status = await git(exec, repo, ["status", "--porcelain", "--untracked-files=no"]);
  if (status.stdout.trim()) throw new BottleError(`${repo} has uncommitted changes: nothing was ${verb}`, { fix: `commit or stash them, then run bottle ${verb === "merged" ? "merge" : "apply"} again` });
}

/** Scans the commits `tip` brings beyond `exclude` (the git gate's rules); findings refuse the work. */
export type Scan = (gitDir: string, tip: string, exclude: string[]) => Promise<Array<{ file: string; line: number; rule: string; description: string; commit: string }>>;

async function requireNoSecrets(exec: Exec, work: BottleBranch, scan: Scan, verb: string): Promise<void> {
  const gitDir = (await git(exec, work.repo, ["rev-parse", "--path-format=absolute", "--git-common-dir"])).stdout.trim();
  const findings = await scan(gitDir, `refs/heads/${work.branch}`, ["HEAD"]);
  if (!findings.length) return;
  const lines = findings.map((finding) => `  ${finding.file}:${finding.line}  rule ${finding.rule} (${finding.description})  commit ${finding.commit.slice(0, 12)}`);
  throw new BottleError(`gitleaks found ${findings.length} secret(s) in ${work.branch}'s commits: nothing was ${verb}\n${lines.join("\n")}`, {
    fix: "remove the secret from those commits in the bottle (or drop them), then try again; if it is a real credential, treat it as exposed",
  });
}

/**
 * `bottle merge`: the branch into the host's current branch (a merge, or one
 * squashed commit). Refused on a dirty tree or a secret; on a conflict the
 * merge is undone and the conflicting files named.
 */
export async function mergeWork(exec: Exec, work: BottleBranch, options: { squash?: boolean; scan: Scan }): Promise<{ commits: number; head: string }> {
  await requireClean(exec, work.repo, "merged");
  const tip = `refs/heads/${work.branch}`;
  const commits = Number((await git(exec, work.repo, ["rev-list", "--count", `HEAD..${tip}`])).stdout.trim()) || 0;
  if (commits === 0) throw new BottleError(`${work.branch} has nothing your current branch does not have`, { fix: "nothing to merge" });
  await requireNoSecrets(exec, work, options.scan, "merged");
  const merged = options.squash
    ? await git(exec, work.repo, ["merge", "--squash", tip], { check: false })
    : await git(exec, work.repo, ["merge", "--no-edit", "-m", `Merge ${work.branch} (the work of bottle ${work.bottle})`, tip], { check: false });
  if (merged.exitCode !== 0) {
    const conflicts = (await git(exec, work.repo, ["diff", "--name-only", "--diff-filter=U"], { check: false })).stdout.trim().split("\n").filter(Boolean);
    // Back to where it was: the tree was clean, so nothing of the user's is lost.
    await git(exec, work.repo, options.squash ? ["reset", "-q", "--merge"] : ["merge", "--abort"], { check: false });
    throw new BottleError(
      conflicts.length ? `${work.branch} conflicts with your current branch in ${conflicts.join(", ")}: nothing was merged` : `git could not merge ${work.branch}: ${merged.stderr.trim().split("\n").pop() ?? ""}`,
      { fix: conflicts.length ? `merge it yourself (git merge ${work.branch}) and resolve the conflicts, or take it as changes with bottle apply` : "see git's message above" },
    );
  }
  if (options.squash) await git(exec, work.repo, ["commit", "-q", "--no-verify", "-m", `The work of bottle ${work.bottle} (${work.branch}, ${commits} commit${commits === 1 ? "" : "s"} squashed)`]);
  const head = (await git(exec, work.repo, ["rev-parse", "HEAD"])).stdout.trim();
  return { commits, head };
}

/** `bottle apply`: the branch's changes as uncommitted changes in the host tree, all or nothing. */
export async function applyWork(exec: Exec, work: BottleBranch, options: { scan: Scan }): Promise<{ files: string[] }> {
  await requireNoSecrets(exec, work, options.scan, "applied");
  const patch = await git(exec, work.repo, ["diff", "--binary", "--no-ext-diff", "--no-textconv", work.base, `refs/heads/${work.branch}`]);
  if (!patch.stdout.trim()) throw new BottleError(`${work.branch} changes nothing since it started`, { fix: "nothing to apply" });
  const applied = await git(exec, work.repo, ["apply", "--whitespace=nowarn"], { check: false, stdin: patch.stdout });
  if (applied.exitCode !== 0)
    throw new BottleError(`${work.branch}'s changes do not apply to your tree: nothing was applied`, {
      details: applied.stderr.trim().split("\n").slice(0, 6).join("\n"),
      fix: `merge it instead (bottle merge ${work.bottle}), or apply on a tree closer to ${work.base.slice(0, 12)}`,
    });
  const files = (await git(exec, work.repo, ["diff", "--name-only", work.base, `refs/heads/${work.branch}`])).stdout.trim().split("\n").filter(Boolean);
  return { files };
}
