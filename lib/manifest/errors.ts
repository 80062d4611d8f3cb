import { homedir } from "node:os";
import { BottleError } from "../errors.ts";

/** One problem in one manifest file, located as precisely as the file allows. */
export interface ManifestIssue {
  /** Absolute path of the file (or "(built-in)"). */
  file: string;
  /** 1-based; 0 when the problem has no position (the file as a whole). */
  line: number;
  col: number;
  /** Field path like `egress.allow[2]`; "" for the document itself. */
  path: string;
  message: string;
}

type Env = Record<string, string | undefined>;

/** `~/…` for paths under the home dir, so messages stay short and anonymous. */
export function displayPath(file: string, env: Env = process.env): string {
  const home = (env.HOME || homedir()).replace(/\/+$/, "");
  if (home && (file === home || file.startsWith(`${home}/`))) return `~${file.slice(home.length)}`;
  return file;
}

export function formatIssue(issue: ManifestIssue, env: Env = process.env): string {
  const where = issue.line > 0 ? `${displayPath(issue.file, env)}:${issue.line}:${issue.col}` : displayPath(issue.file, env);
  return issue.path ? `${where}: ${issue.path}: ${issue.message}` : `${where}: ${issue.message}`;
}

/**
 * Every problem found in the manifests a command needed, reported at once.
 * `message` is one `file:line:col: path: message` line per issue. Messages
 * name variables, never their values.
 */
export class ManifestError extends BottleError {
  readonly issues: ManifestIssue[];

  constructor(issues: ManifestIssue[], options: { fix?: string; env?: Env } = {}) {
    super(issues.map((issue) => formatIssue(issue, options.env)).join("\n"), { fix: options.fix });
    this.name = "ManifestError";
    this.issues = issues;
  }
}

/** Render a field path: `egress.allow[2]`, `env.TOKEN`, `git.remotes["my.remote"]`. */
export function formatPath(path: ReadonlyArray<string | number>): string {
  let out = "";
  for (const segment of path) {
    if (typeof segment === "number") out += `[${segment}]`;
    else if (/^[A-Za-z0-9_-]+$/.test(segment)) out += out ? `.${segment}` : segment;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}
