import { join } from "node:path";
import * as v from "valibot";
import { stateDir } from "../paths.ts";
import { readStateList, writeStateList } from "../state-list.ts";

/**
 * The branches bottles made in the user's repositories, kept in the state
 * dir (never in a repository, which a bottle may have seen): which bottle,
 * from which commit, in which mode. `bottle branches`, `diff`, `log`,
 * `merge` and `apply` read it; a branch of a name it does not hold is not a
 * bottle's, and `--branch` refuses to take it over.
 */

const EntrySchema = v.object({
  /** The repository's top level on the host. */
  repo: v.string(),
  branch: v.string(),
  bottle: v.string(),
  /** The commit the bottle started from: what its work is measured against. */
  base: v.string(),
  mode: v.picklist(["mount", "copy", "branch"]),
  createdAt: v.string(),
});

export type BottleBranch = v.InferOutput<typeof EntrySchema>;

function registryFile(): string {
  return join(stateDir(), "branches.json");
}

export function readBranches(): BottleBranch[] {
  return readStateList(registryFile(), EntrySchema);
}

/** Adds (or replaces, by repository and branch) an entry. */
export function recordBranch(entry: BottleBranch): void {
  writeBranches([...readBranches().filter((other) => !(other.repo === entry.repo && other.branch === entry.branch)), entry]);
}

/** Drops a repository's entry for `branch` (the branch is gone). */
export function forgetBranch(repo: string, branch: string): void {
  writeBranches(readBranches().filter((entry) => !(entry.repo === repo && entry.branch === branch)));
}

function writeBranches(entries: BottleBranch[]): void {
  writeStateList(registryFile(), entries);
}

/** A repository's entry for `name`: a bottle's name, or a branch's. */
export function findBranch(repo: string, name: string): BottleBranch | undefined {
  const entries = readBranches().filter((entry) => entry.repo === repo);
  return entries.findLast((entry) => entry.bottle === name) ?? entries.find((entry) => entry.branch === name);
}
