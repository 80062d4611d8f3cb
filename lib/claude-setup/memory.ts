import { readFileSync, realpathSync, statSync } from "node:fs";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import { type SensitivePath, sensitiveHolder } from "../sensitive-paths.ts";

/**
 * The user's memory: ~/.claude/CLAUDE.md and the files it imports with
 * `@path` (Claude Code follows imports up to five hops deep, relative to the
 * importing file, `~/` from the home dir; not inside code). Each file is
 * copied to its own place in the bottle and every import is rewritten to
 * point there, so the bottle sees the same memory whatever the host's paths.
 */

/** Claude Code's own limit on import hops. */
const MAX_DEPTH = 5;
/** Per file and in all: memory is prose, and a runaway import must not copy a disk into the bottle. */
const MAX_FILE_BYTES = 256 * 1024;
const MAX_TOTAL_BYTES = 4 * 1024 * 1024;

export interface MemoryFile {
  /** Where it was read on the host. */
  host: string;
  /** Where it goes in the bottle (absolute). */
  bottle: string;
  content: string;
}

export interface Memory {
  files: MemoryFile[];
  /** Imports left as written, each with why (never a file's content). */
  skipped: string[];
}

/** `@path` tokens outside code: at the start of a line or after white space. */
const IMPORT = /(^|\s)@((?:~\/|\/|\.{1,2}\/)?[^\s`'"()<>[\]]+)/g;

/** Each import token's place in `text` (fenced blocks and inline code left out). */
function importsIn(text: string): Array<{ start: number; end: number; path: string }> {
  const found: Array<{ start: number; end: number; path: string }> = [];
  let offset = 0;
  let fence: string | undefined;
  for (const line of text.split("\n")) {
    const marker = /^\s*(```+|~~~+)/.exec(line)?.[1];
    if (marker && (!fence || marker.startsWith(fence))) fence = fence ? undefined : marker.slice(0, 3);
    else if (!fence) {
      // Inline code spans blanked out (same length, so offsets hold).
      const plain = line.replace(/`[^`]*`/g, (span) => " ".repeat(span.length));
      for (const match of plain.matchAll(IMPORT)) {
        const start = offset + match.index + match[1]!.length;
        found.push({ start, end: start + 1 + match[2]!.length, path: match[2]!.replace(/[.,;:!?]+$/, "") });
      }
    }
    offset += line.length + 1;
  }
  return found;
}

function resolveImport(path: string, from: string, home: string): string {
  if (path.startsWith("~/")) return join(home, path.slice(2));
  return isAbsolute(path) ? path : resolve(dirname(from), path);
}

/**
 * Reads `root` (the host's CLAUDE.md) and what it imports, into `stage` in
 * the bottle: the root as stage/CLAUDE.md, imports as stage/imports/N-name.
 * Undefined when there is no root. Imports of a sensitive path, a missing or
 * non-regular file, or past the size limits are left as written (Claude Code
 * skips an import it cannot read) and said in `skipped`.
 */
export function readMemory(root: string, stage: string, home: string, sensitive: readonly SensitivePath[]): Memory | undefined {
  let rootReal: string;
  try {
    rootReal = realpathSync(root);
    if (!statSync(rootReal).isFile()) return undefined;
  } catch {
    return undefined;
  }
  const files: MemoryFile[] = [];
  const skipped: string[] = [];
  const placed = new Map<string, string>();
  let total = 0;

  const place = (hostReal: string, bottlePath: string, depth: number): boolean => {
    const size = statSync(hostReal).size;
    if (size > MAX_FILE_BYTES || total + size > MAX_TOTAL_BYTES) return false;
    total += size;
    placed.set(hostReal, bottlePath);
    const file: MemoryFile = { host: hostReal, bottle: bottlePath, content: "" };
    files.push(file);
    file.content = rewrite(readFileSync(hostReal, "utf8"), hostReal, depth);
    return true;
  };

  const rewrite = (text: string, from: string, depth: number): string => {
    let out = "";
    let last = 0;
    for (const token of importsIn(text)) {
      const target = importTarget(token.path, from, depth);
      if (target === undefined) continue;
      out += `${text.slice(last, token.start)}@${target}`;
      last = token.end;
    }
    return out + text.slice(last);
  };

  /** The bottle path an import now points at, or undefined to leave it as written. */
  const importTarget = (path: string, from: string, depth: number): string | undefined => {
    const host = resolveImport(path, from, home);
    let real: string;
    try {
      real = realpathSync(host);
      if (!statSync(real).isFile()) return undefined;
    } catch {
      return undefined;
    }
    const known = placed.get(real);
    if (known) return known;
    const holder = sensitiveHolder(host, sensitive) ?? sensitiveHolder(real, sensitive);
    if (holder) {
      skipped.push(`@${path}: inside ${holder.path} (${holder.what}), which never goes into a bottle`);
      return undefined;
    }
    if (depth >= MAX_DEPTH) {
      skipped.push(`@${path}: more than ${MAX_DEPTH} imports deep`);
      return undefined;
    }
    const bottlePath = `${stage}/imports/${placed.size}-${basename(real)}`;
    if (!place(real, bottlePath, depth + 1)) {
      skipped.push(`@${path}: over the size limit for memory (${MAX_FILE_BYTES / 1024} KiB a file, ${MAX_TOTAL_BYTES / 1024 / 1024} MiB in all)`);
      return undefined;
    }
    return bottlePath;
  };

  if (!place(rootReal, `${stage}/CLAUDE.md`, 0)) {
    skipped.push(`${root}: over the size limit for memory (${MAX_FILE_BYTES / 1024} KiB)`);
    return { files: [], skipped };
  }
  return { files, skipped };
}
