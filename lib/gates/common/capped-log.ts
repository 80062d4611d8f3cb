/**
 * An append-only log file with a byte cap, for the gates' JSON-lines logs
 * (egress.jsonl, ssh.jsonl), which land in the host's state dir: a bottle must
 * not be able to fill the host's disk through them. When the next line would
 * take the file past half the cap, the file becomes `<path>.1` (replacing the
 * previous one) and a new one starts, so the two never hold more than the cap
 * together. The git gate's shell does the same (assets/git/lib.sh).
 *
 * lib/gates/common/ holds what more than one gate daemon bundles: it imports
 * only node:* and its own files (test/unit/gates/daemon-imports.test.ts).
 */
import { closeSync, fstatSync, openSync, renameSync, writeSync } from "node:fs";

/** The one older generation kept beside a capped log. */
export const ROTATED_SUFFIX = ".1";

export class CappedLog {
  private fd: number | null = null;
  private size = 0;

  /** `maxBytes`: the file and its `.1` together; 0 = no cap. */
  constructor(
    private path: string,
    private maxBytes: number,
  ) {
    this.open();
  }

  get file(): string {
    return this.path;
  }

  /** Another file or cap (config reload); reopens even for the same path, so an outside rotation is followed too. */
  reopen(path: string, maxBytes: number): void {
    const old = this.fd;
    this.path = path;
    this.maxBytes = maxBytes;
    this.open();
    if (old !== null && old !== this.fd) closeQuietly(old);
  }

  /** Appends `line` (newline included). Throws when it cannot be written, or could never fit under the cap. */
  append(line: string): void {
    const bytes = Buffer.from(line);
    const half = Math.floor(this.maxBytes / 2);
    if (this.maxBytes > 0 && bytes.length > half) throw new Error(`a ${bytes.length}-byte line does not fit under the log's cap of ${this.maxBytes} bytes`);
    if (this.maxBytes > 0 && this.size > 0 && this.size + bytes.length > half) this.rotate();
    if (this.fd === null) this.open();
    writeSync(this.fd!, bytes);
    this.size += bytes.length;
  }

  close(): void {
    if (this.fd !== null) closeQuietly(this.fd);
    this.fd = null;
  }

  private open(): void {
    // World-readable: the file is bind-mounted into the host state dir, where a
    // non-root user runs `bottle logs`. Lines hold no secrets.
    this.fd = openSync(this.path, "a", 0o644);
    this.size = fstatSync(this.fd).size;
  }

  private rotate(): void {
    this.close();
    try {
      renameSync(this.path, this.path + ROTATED_SUFFIX);
    } catch {
      // Gone already (removed from outside): a new file starts all the same.
    }
    this.open();
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
