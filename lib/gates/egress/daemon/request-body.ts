/**
 * A plain-HTTP request body on its way upstream: where it ends (its
 * framing), and DLP's body guards. The body goes upstream byte for byte as
 * the bottle framed it, but only as far as no guard holds bytes back, so the
 * bytes that would start a secret have not left when the secret is found.
 *
 * A Content-Length body is scanned as it is. A chunked body is scanned
 * twice: its payload (chunk data joined, so a secret split across chunks is
 * one run) and its raw bytes (chunk extensions, trailers).
 */
import type { BodyGuard, DlpFinding } from "./dlp.ts";
import { type BodyFraming, ChunkedScanner } from "./http1.ts";

export type BodyStep =
  /** `out`: the bytes to send upstream now. */
  | { out: Buffer }
  /** The framing is broken. */
  | { error: string }
  /** A secret: nothing more may be sent. */
  | { finding: DlpFinding };

/** Where DLP's body guards come from (null: no secrets to look for). */
export interface GuardSource {
  bodyGuard(): BodyGuard | null;
}

/** A run of chunk data: where it lies in the payload and in the raw body. */
interface Run {
  payload: number;
  raw: number;
  length: number;
}

/** Passes `bytes` through `guard`; returns how many bytes it released, or the finding. */
function through(guard: BodyGuard | null, bytes: Buffer | null): number | DlpFinding {
  if (!guard) return bytes?.length ?? 0;
  const out = bytes ? guard.push(bytes) : guard.end();
  return Buffer.isBuffer(out) ? out.length : out;
}

export class RequestBody {
  /** The whole body was fed (bytes after it are not part of it and are dropped). */
  done: boolean;
  private remaining: number;
  private readonly chunked: ChunkedScanner | null;
  private readonly payloadGuard: BodyGuard | null;
  private readonly rawGuard: BodyGuard | null;
  /** Raw body bytes fed, sent, and released by the raw guard. */
  private fed = 0;
  private sent = 0;
  private rawReleased = 0;
  private unsent: Buffer = Buffer.alloc(0);
  /** Payload bytes fed and released by the payload guard; the chunk-data runs the guard may still hold. */
  private payloadFed = 0;
  private payloadReleased = 0;
  private runs: Run[] = [];

  constructor(framing: Exclude<BodyFraming, { kind: "error" }>, guards: GuardSource) {
    this.done = framing.kind === "none";
    this.remaining = framing.kind === "length" ? framing.length : 0;
    this.chunked = framing.kind === "chunked" ? new ChunkedScanner() : null;
    this.payloadGuard = this.done ? null : guards.bodyGuard();
    this.rawGuard = this.chunked ? guards.bodyGuard() : null;
  }

  feed(chunk: Buffer): BodyStep {
    if (this.done) return { out: Buffer.alloc(0) };
    const pieces: Buffer[] = [];
    let take: number;
    if (this.chunked) {
      const base = this.fed;
      let payload = this.payloadFed;
      const fed = this.chunked.feed(chunk, (start, end) => {
        this.runs.push({ payload, raw: base + start, length: end - start });
        payload += end - start;
        pieces.push(chunk.subarray(start, end));
      });
      if (typeof fed !== "number") return fed;
      take = fed;
      this.done = this.chunked.done;
    } else {
      take = Math.min(this.remaining, chunk.length);
      this.remaining -= take;
      this.done = this.remaining === 0;
      pieces.push(chunk.subarray(0, take));
    }
    const raw = chunk.subarray(0, take);
    this.fed += take;
    this.unsent = this.unsent.length === 0 ? raw : Buffer.concat([this.unsent, raw]);
    for (const piece of pieces) {
      this.payloadFed += piece.length;
      const released = through(this.payloadGuard, piece);
      if (typeof released !== "number") return { finding: released };
      this.payloadReleased += released;
    }
    if (this.rawGuard) {
      const released = through(this.rawGuard, raw);
      if (typeof released !== "number") return { finding: released };
      this.rawReleased += released;
    }
    if (this.done) {
      for (const guard of [this.payloadGuard, this.rawGuard]) {
        const released = through(guard, null);
        if (typeof released !== "number") return { finding: released };
      }
      return { out: this.send(this.fed) };
    }
    return { out: this.send(Math.min(this.rawOffset(this.payloadReleased), this.rawGuard ? this.rawReleased : this.fed)) };
  }

  /** Where payload byte `offset` lies in the raw body (the end of what was fed once all payload is released). */
  private rawOffset(offset: number): number {
    if (!this.chunked) return offset;
    if (offset >= this.payloadFed) return this.fed;
    while (this.runs.length > 0) {
      const run = this.runs[0];
      if (run === undefined || offset < run.payload + run.length) break;
      this.runs.shift();
    }
    const run = this.runs[0];
    return run ? run.raw + Math.max(0, offset - run.payload) : this.fed;
  }

  /** The unsent raw bytes up to raw offset `limit`. */
  private send(limit: number): Buffer {
    const count = Math.max(0, limit - this.sent);
    const out = this.unsent.subarray(0, count);
    this.unsent = this.unsent.subarray(count);
    this.sent += count;
    return out;
  }
}
