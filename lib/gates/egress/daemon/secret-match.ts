/**
 * Finds the forms of a set of secrets (secret-forms.ts) in bytes, also in a
 * stream that arrives in chunks: a form may span chunks, so only a tail that
 * could still become one is held back, and everything before it is released
 * at once (server-sent events keep flowing).
 */
import { type Spelling, type Unit, secretForms } from "./secret-forms.ts";

export interface SecretMatch {
  start: number;
  end: number;
  /** Index of the secret in the list the matcher was made from. */
  secret: number;
}

interface Compiled {
  secret: number;
  units: readonly Unit[];
}

const NONE = -1;
/** The data ended inside a spelling: more bytes could complete it. */
const CUT = -2;

function spell(spelling: Spelling, data: Uint8Array, pos: number): number {
  const { bytes, fold } = spelling;
  for (let k = 0; k < bytes.length; k++) {
    if (pos + k >= data.length) return CUT;
    let byte = data[pos + k] ?? 0;
    if (fold && byte >= 0x41 && byte <= 0x5a) byte += 0x20;
    if (byte !== bytes[k]) return NONE;
  }
  return pos + bytes.length;
}

/**
 * Where a form starting at `start` ends (the longest way), or NONE, or CUT.
 * Spellings of one character rarely both match (only when one is a prefix
 * of another: a raw `\\` and `\\\\`); from there on every way is followed
 * at once, as a set of positions, so that a run of such characters cannot
 * make the work grow exponentially.
 */
function walk(units: readonly Unit[], data: Uint8Array, start: number): number {
  let pos = start;
  let cut = false;
  for (let i = 0; i < units.length; i++) {
    let next = NONE;
    let others: number[] | null = null;
    for (const spelling of units[i] ?? []) {
      const end = spell(spelling, data, pos);
      if (end === CUT) cut = true;
      else if (end === NONE) continue;
      else if (next === NONE) next = end;
      else if (end !== next && !others?.includes(end)) (others ??= []).push(end);
    }
    if (next === NONE) return cut ? CUT : NONE;
    if (others !== null) return walkAll(units, data, i + 1, [next, ...others], cut);
    pos = next;
  }
  return pos;
}

/** `walk` from unit `index` on, for every position in `positions` at once. */
function walkAll(units: readonly Unit[], data: Uint8Array, index: number, positions: number[], cut: boolean): number {
  for (let i = index; i < units.length; i++) {
    const next: number[] = [];
    for (const pos of positions) {
      for (const spelling of units[i] ?? []) {
        const end = spell(spelling, data, pos);
        if (end === CUT) cut = true;
        else if (end !== NONE && !next.includes(end)) next.push(end);
      }
    }
    if (next.length === 0) return cut ? CUT : NONE;
    positions = next;
  }
  return Math.max(...positions);
}

/** The bytes that `spelling` accepts at offset `k`. */
function bytesAt(spelling: Spelling, k: number): number[] {
  const byte = spelling.bytes[k] ?? 0;
  return spelling.fold && byte >= 0x61 && byte <= 0x7a ? [byte, byte - 0x20] : [byte];
}

const ANY_BYTE = Array.from({ length: 256 }, (_, byte) => byte);

/** The first two bytes a form can start with. */
function firstPairs(units: readonly Unit[]): Array<[number, number]> {
  const pairs: Array<[number, number]> = [];
  for (const spelling of units[0] ?? []) {
    const next = units[1];
    // A one-character form may be followed by anything.
    const seconds = spelling.bytes.length > 1 ? bytesAt(spelling, 1) : next ? next.flatMap((after) => bytesAt(after, 0)) : ANY_BYTE;
    for (const first of bytesAt(spelling, 0)) for (const second of seconds) pairs.push([first, second]);
  }
  return pairs;
}

export class SecretMatcher {
  /** First byte → the forms that can start with it. */
  private readonly starts: Array<Compiled[] | undefined> = new Array<Compiled[] | undefined>(256);
  /** First two bytes (first * 256 + second) → 1 when some form can start with them: most text is passed over on this alone. */
  private readonly pairs = new Uint8Array(65536);
  readonly empty: boolean;

  /** `secrets`: the values to look for (empty strings are ignored). */
  constructor(secrets: readonly string[]) {
    let count = 0;
    secrets.forEach((secret, index) => {
      if (secret === "") return;
      for (const form of secretForms(secret)) {
        count++;
        const compiled = { secret: index, units: form.units };
        const firsts = new Set<number>();
        for (const [first, second] of firstPairs(form.units)) {
          firsts.add(first);
          this.pairs[first * 256 + second] = 1;
        }
        for (const byte of firsts) (this.starts[byte] ??= []).push(compiled);
      }
    });
    this.empty = count === 0;
  }

  /**
   * The first event at or after `from`: a match (the longest at its start),
   * or `{ cut }` where a form begins that the end of `data` cuts off (only
   * when not `final`: more data could complete it), or null.
   */
  scan(data: Uint8Array, from: number, final: boolean): SecretMatch | { cut: number } | null {
    const last = data.length - 1;
    for (let at = from; at <= last; at++) {
      const first = data[at] ?? 0;
      const candidates = this.starts[first];
      if (candidates === undefined || (at < last && this.pairs[first * 256 + (data[at + 1] ?? 0)] === 0)) continue;
      let best: SecretMatch | null = null;
      for (const form of candidates) {
        const end = walk(form.units, data, at);
        if (end === CUT && !final) return { cut: at };
        if (end > at && (best === null || end > best.end)) best = { start: at, end, secret: form.secret };
      }
      if (best) return best;
    }
    return null;
  }

  /** Whether `data` (complete) carries any of the secrets. */
  test(data: Uint8Array): boolean {
    return !this.empty && this.scan(data, 0, true) !== null;
  }
}

/** A part of the stream's output: bytes to pass on, or the index of a secret found there. */
export type StreamPart = Buffer | number;

/** A matcher run over a byte stream. */
export class SecretStream {
  private held: Buffer = Buffer.alloc(0);

  constructor(private readonly matcher: SecretMatcher) {}

  /** What can be passed on now: bytes, with each secret found between them, in order. */
  push(chunk: Buffer): StreamPart[] {
    if (this.matcher.empty) return chunk.length > 0 ? [chunk] : [];
    return this.run(this.held.length === 0 ? chunk : Buffer.concat([this.held, chunk]), false);
  }

  /** The end of the stream: what was held back, with the secrets in it. */
  flush(): StreamPart[] {
    return this.run(this.held, true);
  }

  private run(data: Buffer, final: boolean): StreamPart[] {
    const parts: StreamPart[] = [];
    let pos = 0;
    let keep = data.length;
    for (;;) {
      const event = this.matcher.scan(data, pos, final);
      if (event === null) break;
      if ("cut" in event) {
        keep = event.cut;
        break;
      }
      if (event.start > pos) parts.push(data.subarray(pos, event.start));
      parts.push(event.secret);
      pos = event.end;
    }
    if (keep > pos) parts.push(data.subarray(pos, keep));
    this.held = Buffer.from(data.subarray(Math.max(pos, keep)));
    return parts;
  }
}
