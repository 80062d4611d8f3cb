/**
 * Bulk downloads leave Node.js: once a tunnel or exchange has carried
 * `thresholdBytes` from the upstream, its download direction (upstream →
 * bottle) is handed to bottle-splice (assets/bottle-splice.c), which copies
 * socket to socket inside the kernel. Relaying in Node saturates one core at
 * about a quarter of the direct throughput; splice roughly doubles it.
 *
 * Only the download direction moves: the upload direction, the byte budget,
 * DLP and the timers stay here, and small exchanges (API calls, streamed
 * responses) never pay a process spawn.
 */
import { type ChildProcess, spawn } from "node:child_process";
import type * as net from "node:net";
import type { Readable, Writable } from "node:stream";

export const SPLICE_HELPER = "/usr/local/libexec/bottle-splice";
export const SPLICE_THRESHOLD_BYTES = 1 << 20;
/** Copiers at once per gate: the gate container's pids limit (512) is shared with git daemon and ssh. */
export const SPLICE_MAX_RUNNING = 64;

/** One gate's copiers: where the helper is, when a download is bulky, and how many run. */
export class Splicer {
  running = 0;

  constructor(
    /** bottle-splice in the gate image. */
    readonly path: string,
    /** Bytes a connection must have carried from the upstream before its download is handed over. */
    readonly thresholdBytes = SPLICE_THRESHOLD_BYTES,
    /** Beyond this many, further downloads stay in Node.js. */
    readonly maxRunning = SPLICE_MAX_RUNNING,
  ) {}
}

/** How a spliced download ended: the upstream's EOF, or which side failed. */
export type SpliceEnd = "eof" | "upstream-error" | "client-error";

export interface DownloadSplice {
  /** Hands the download over when it is bulky enough and nothing is in flight; true once handed over. */
  tryStart(): boolean;
  /** Ends the copy at once (the connection is being torn down); no `end` callback follows. */
  kill(): void;
}

/** The libuv stream handle behind a net.Socket (not part of Node's typed API). */
interface StreamHandle {
  fd?: number;
  reading?: boolean;
  readStop(): number;
}

function handleOf(socket: net.Socket): (StreamHandle & { fd: number }) | null {
  const handle = (socket as unknown as { _handle?: StreamHandle | null })._handle;
  if (!handle || typeof handle.readStop !== "function" || typeof handle.fd !== "number" || handle.fd < 0) return null;
  return handle as StreamHandle & { fd: number };
}

const EXIT_ENDS: Record<number, SpliceEnd> = { 0: "eof", 2: "upstream-error", 3: "client-error" };

/**
 * The download of one connection. `counters.bytesIn` is how many bytes came
 * from the upstream so far; after the hand-over it keeps counting what the
 * copy reports, and each report calls `onProgress` (the idle timer). `onEnd`
 * says how the copy ended.
 */
export function downloadSplice(
  splicer: Splicer | null | undefined,
  upstream: net.Socket,
  client: net.Socket,
  counters: { bytesIn: number },
  onProgress: () => void,
  onEnd: (end: SpliceEnd) => void,
): DownloadSplice {
  let child: ChildProcess | null = null;
  let killed = false;
  let exited = false;
  const ready = (): boolean =>
    splicer != null &&
    child === null &&
    !killed &&
    counters.bytesIn >= splicer.thresholdBytes &&
    splicer.running < splicer.maxRunning &&
    // Nothing Node read may be left unsent, and nothing may wait in the client's queue: bytes stay in order.
    upstream.readableLength === 0 &&
    !upstream.readableEnded &&
    client.writableLength === 0 &&
    client.writable &&
    !upstream.destroyed &&
    !client.destroyed;

  const start = (copiers: Splicer): boolean => {
    const from = handleOf(upstream);
    const to = handleOf(client);
    if (!from || !to) return false;
    upstream.pause();
    if (from.readStop() !== 0) {
      upstream.resume();
      return false;
    }
    // Node never reads this socket again: `reading` stays true, so the stream's
    // read-ahead (a read(0) already queued) cannot start the handle again.
    from.reading = true;
    let proc: ChildProcess | null = null;
    try {
      // Plain fds, not the sockets (spawn would stop reading a socket it is given, and the upload still
      // flows here), and above 2: libuv makes a child's stdio blocking, for the gate's side as well.
      proc = spawn(copiers.path, [String(process.pid)], { stdio: ["ignore", "ignore", "ignore", from.fd, to.fd, "pipe"] });
    } catch {
      proc = null;
    }
    if (proc?.pid === undefined) {
      // Not spawned (no helper, no pids or fds left): Node keeps relaying this download.
      proc?.on("error", () => undefined);
      from.reading = false;
      upstream.resume();
      return false;
    }
    child = proc;
    copiers.running++;
    const base = counters.bytesIn;
    let total = 0;
    let pending = "";
    // Node's typings know five stdio entries; the report pipe is the sixth.
    const reports = (proc.stdio as ReadonlyArray<Readable | Writable | null | undefined>)[5] as Readable | undefined;
    reports?.on("data", (chunk: Buffer) => {
      pending += chunk.toString("latin1");
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      const last = Number(lines.at(-1));
      if (lines.length > 0 && Number.isFinite(last) && last > total) {
        total = last;
        counters.bytesIn = base + total;
        onProgress();
      }
    });
    const ended = (end: SpliceEnd): void => {
      if (exited) return;
      exited = true;
      copiers.running--;
      if (!killed) onEnd(end);
    };
    proc.on("error", () => ended("upstream-error"));
    proc.on("close", (code) => ended(EXIT_ENDS[code ?? -1] ?? "upstream-error"));
    return true;
  };

  return {
    tryStart(): boolean {
      if (splicer == null || !ready()) return child !== null;
      return start(splicer);
    },
    kill(): void {
      if (killed) return;
      killed = true;
      if (!exited) child?.kill("SIGKILL");
    },
  };
}

/** After a spliced download's EOF: closes the upstream once everything Node still sends it was written. */
export function closeWhenWritten(upstream: net.Socket): void {
  if (upstream.writableFinished || upstream.destroyed) upstream.destroy();
  else upstream.once("finish", () => upstream.destroy());
}
