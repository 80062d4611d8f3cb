/**
 * Bounds what denials write to the audit log, so that a bottle which is
 * denied over and over cannot grow the host's log (nor bury what matters in
 * it). Allowed traffic passes unchanged: one line per decision.
 *
 *  - Repeated denials (same method, host, port and rule) are one line per
 *    interval: the first is written at once, in full; the ones after it are
 *    counted and written as one line with `count` when the interval ends.
 *  - A flood of distinct names defeats that, so denial lines overall are
 *    bounded per second too; what is over is counted per rule and written as
 *    one line with `count` when the interval ends.
 *
 * A line's `count` (absent: 1) is how many denials it stands for, so
 * `bottle logs` and the teardown summary still add up every denial. A line
 * that stands for several keeps the fields they all shared; those that
 * differed (a path, a detail) are left out.
 */
import type { AuditInput, AuditSink } from "./audit.ts";
import { RateLimiter } from "./limits.ts";

export interface DenialBounds {
  /** How long repeats of a denial are counted before their line is written. */
  intervalMs: number;
  /** Denial lines per second, overall… */
  linesPerSecond: number;
  /** …and how many may be written at once after a quiet spell. */
  burst: number;
  /** Denials counted at once (memory bound); past it, they count as over the line budget. */
  maxKeys: number;
}

export const DEFAULT_DENIAL_BOUNDS: DenialBounds = { intervalMs: 10_000, linesPerSecond: 20, burst: 200, maxKeys: 4096 };

/** The host of a line standing for denials of several hosts. */
export const MANY_HOSTS = "(many hosts)";

/** Fields a line standing for several denials keeps only when they all agree. */
const OPTIONAL = ["path", "detail", "qtype", "status", "match", "end", "auth"] as const;
const VARYING = ["method", "host", "port", ...OPTIONAL] as const;

/** Denials counted towards one line: the first, how many, and which fields differed among them. */
interface Tally {
  first: AuditInput;
  count: number;
  differs: Set<(typeof VARYING)[number]>;
  durationMs: number;
  bytesIn: number;
  bytesOut: number;
}

function tally(input: AuditInput): Tally {
  return { first: input, count: 1, differs: new Set(), durationMs: input.durationMs, bytesIn: input.bytesIn, bytesOut: input.bytesOut };
}

/** Adds `more` to `into`. */
function absorb(into: Tally, more: Tally): void {
  into.count += more.count;
  for (const field of more.differs) into.differs.add(field);
  for (const field of VARYING) if (into.first[field] !== more.first[field]) into.differs.add(field);
  into.durationMs = Math.max(into.durationMs, more.durationMs);
  into.bytesIn += more.bytesIn;
  into.bytesOut += more.bytesOut;
}

/** The line for counted denials: one alone is written as it was; several as what they shared, and their count. */
function line(denials: Tally): AuditInput {
  if (denials.count === 1) return denials.first;
  const { durationMs, bytesIn, bytesOut, count, differs } = denials;
  const merged: AuditInput = { ...denials.first, durationMs, bytesIn, bytesOut, count };
  for (const field of OPTIONAL) if (differs.has(field)) delete merged[field];
  if (differs.has("method")) merged.method = "*";
  if (differs.has("host")) merged.host = MANY_HOSTS;
  if (differs.has("port")) merged.port = 0;
  return merged;
}

export class DenialAggregator implements AuditSink {
  /** Denials written in full this interval or the last, by key → their repeats since (none yet: null). */
  private readonly repeats = new Map<string, Tally | null>();
  /** Denials over the line budget, by rule. */
  private readonly overflow = new Map<string, Tally>();
  private readonly lines: RateLimiter;
  private intervalEnd: number;

  constructor(
    private readonly sink: AuditSink,
    private readonly bounds: DenialBounds = DEFAULT_DENIAL_BOUNDS,
    private readonly now: () => number = () => Date.now(),
  ) {
    this.lines = new RateLimiter(bounds.linesPerSecond * 60, now, bounds.burst);
    this.intervalEnd = now() + bounds.intervalMs;
  }

  write(input: AuditInput): void {
    if (input.decision !== "deny") {
      this.sink.write(input);
      return;
    }
    if (this.now() >= this.intervalEnd) this.flush();
    const key = JSON.stringify([input.method, input.host, input.port, input.rule]);
    if (this.repeats.has(key)) {
      const repeats = this.repeats.get(key);
      if (repeats) absorb(repeats, tally(input));
      else this.repeats.set(key, tally(input));
    } else if (this.repeats.size < this.bounds.maxKeys && this.lines.take()) {
      this.repeats.set(key, null);
      this.sink.write(input);
    } else this.over(tally(input));
  }

  /**
   * Ends the interval: one line for each denial's repeats and one per rule
   * for what was over the budget. Called by the gate's timer (and on close);
   * a denial after the interval's end calls it too.
   */
  flush(): void {
    this.intervalEnd = this.now() + this.bounds.intervalMs;
    for (const [key, repeats] of this.repeats) {
      // Quiet for a whole interval: its next denial is news again, written at once.
      if (!repeats) {
        this.repeats.delete(key);
        continue;
      }
      // Still going: counted on, one line per interval.
      this.repeats.set(key, null);
      if (this.lines.take()) this.sink.write(line(repeats));
      else this.over(repeats);
    }
    for (const over of this.overflow.values()) {
      const merged = line(over);
      if (over.count > 1) merged.detail = `denials past the log's ${this.bounds.linesPerSecond} lines a second, counted here`;
      this.sink.write(merged);
    }
    this.overflow.clear();
  }

  /** Counts denials towards their rule's line of what was over the budget. */
  private over(denials: Tally): void {
    const existing = this.overflow.get(denials.first.rule);
    if (existing) absorb(existing, denials);
    else this.overflow.set(denials.first.rule, denials);
  }
}
