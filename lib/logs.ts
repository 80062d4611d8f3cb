import { closeSync, existsSync, fstatSync, openSync, readSync, statSync, watch } from "node:fs";
import { escapeControls, formatAuditLine, readAudit, type AuditLine } from "./audit.ts";
import { usageError } from "./cli/args.ts";
import { BottleError } from "./errors.ts";
import type { Exec } from "./exec.ts";
import { ROTATED_SUFFIX } from "./gates/common/capped-log.ts";
import { formatGitLogLine, type GitLogLine } from "./gates/git/config.ts";
import { formatSshLogLine, type SshLogLine } from "./gates/ssh/config.ts";
import { requireRunning } from "./lifecycle.ts";
import { bottleStateDir } from "./paths.ts";
import { auditLogPath, readPlan } from "./state.ts";
import { syncGateLogs } from "./backends/gate.ts";
import { dockerFor } from "./docker.ts";
import { didYouMean } from "./suggest.ts";

/** `bottle logs`: a gate's decisions from its log in the state dir (followed across rotations), or the bottle's own output. */

/** JSON escapes C0 controls itself; C1 (and DEL) pass through raw unless escaped here. */
function jsonLine(line: AuditLine): string {
  return JSON.stringify(line).replace(/[\x7f-\x9f]/g, (ch) => `\\u00${ch.charCodeAt(0).toString(16)}`);
}

export async function showLogs(exec: Exec, name: string, options: { gate?: string; follow: boolean; json: boolean }): Promise<number> {
  if (!options.gate) return (await requireRunning(exec, name)).bottle.logs(options.follow);
  if (options.gate !== "egress" && options.gate !== "git" && options.gate !== "ssh")
    throw usageError(`unknown gate "${options.gate}"${didYouMean(options.gate, ["egress", "git", "ssh"])}`, "use --gate egress, --gate git or --gate ssh");
  if (!existsSync(bottleStateDir(name))) throw new BottleError(`no bottle named ${name}`, { fix: "see `bottle ls`" });
  const plan = readPlan(name);
  // A remote engine's gate logs there: copied in now, and again every second while following.
  const sync = plan?.engine?.remote ? () => syncGateLogs(dockerFor(exec, plan.engine), plan) : undefined;
  await sync?.();
  const path = auditLogPath(name, options.gate);
  const format =
    options.gate === "git"
      ? (line: AuditLine) => formatGitLogLine(line as GitLogLine)
      : options.gate === "ssh"
        ? (line: AuditLine) => formatSshLogLine(line as SshLogLine)
        : formatAuditLine;
  const print = (lines: AuditLine[]) => {
    for (const line of lines) process.stdout.write(`${options.json ? jsonLine(line) : escapeControls(format(line))}\n`);
  };
  print(readAudit(path));
  if (!options.follow) return 0;
  const timer = sync ? setInterval(() => void sync(), 1_000) : undefined;
  const until = interrupted().finally(() => clearInterval(timer));
  return followFile(path, (text) => {
    for (const line of text.split("\n").filter(Boolean)) {
      try {
        print([JSON.parse(line) as AuditLine]);
      } catch {
        // partial line
      }
    }
  }, until);
}

/** What a file holds past `from` (empty when nothing). */
function readFrom(file: string, from: number): Buffer {
  const fd = openSync(file, "r");
  try {
    const size = fstatSync(fd).size;
    if (size <= from) return Buffer.alloc(0);
    const buffer = Buffer.alloc(size - from);
    return buffer.subarray(0, readSync(fd, buffer, 0, buffer.length, from));
  } finally {
    closeSync(fd);
  }
}

/** Resolves on Ctrl-C or SIGTERM. */
function interrupted(): Promise<void> {
  return new Promise((resolve) => {
    process.once("SIGINT", () => resolve());
    process.once("SIGTERM", () => resolve());
  });
}

/** Print what is appended to a file (a gate log under the state dir) until `until` resolves (Ctrl-C). */
export function followFile(path: string, onText: (text: string) => void, until: Promise<unknown> = interrupted()): Promise<number> {
  const stat = existsSync(path) ? statSync(path) : undefined;
  let offset = stat?.size ?? 0;
  let inode = stat?.ino;
  let pending = Buffer.alloc(0);
  // Whole lines only; a partial one waits for its end.
  const emit = (chunk: Buffer) => {
    const all = Buffer.concat([pending, chunk]);
    const cut = all.lastIndexOf(10);
    pending = all.subarray(cut + 1);
    if (cut >= 0) onText(all.subarray(0, cut + 1).toString("utf8"));
  };
  return new Promise((resolve) => {
    const readNew = () => {
      if (!existsSync(path)) return;
      const { ino } = statSync(path);
      if (ino !== inode) {
        // The gate rotated its log (capped-log.ts): the old file's rest is in its `.1`, the new file is read from its start.
        const rotated = path + ROTATED_SUFFIX;
        if (inode !== undefined && existsSync(rotated) && statSync(rotated).ino === inode) emit(readFrom(rotated, offset));
        inode = ino;
        offset = 0;
      }
      const chunk = readFrom(path, offset);
      offset += chunk.length;
      emit(chunk);
    };
    const watcher = watch(bottleStateDir(path.split("/logs/")[0]!.split("/").pop()!), { recursive: true }, readNew);
    void until.then(() => {
      watcher.close();
      resolve(0);
    });
  });
}

