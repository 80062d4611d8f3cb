/**
 * Minimal DNS wire format (RFC 1035) for the gate's responder: decode a
 * query, encode a response; plus a query encoder / response decoder used by
 * tests and health checks. Pure code.
 */

export const QTYPE = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  OPT: 41,
  HTTPS: 65,
  ANY: 255,
} as const;

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

export const CLASS_IN = 1;
const FLAG_QR = 0x8000;
const FLAG_RD = 0x0100;
const FLAG_RA = 0x0080;
const MAX_NAME_WIRE = 255;

export function qtypeName(qtype: number): string {
  for (const [name, value] of Object.entries(QTYPE)) if (value === qtype) return name;
  return `TYPE${qtype}`;
}

export interface DnsQuestion {
  /** Labels exactly as sent (byte strings, case preserved for 0x20 randomisation). */
  labels: string[];
  /** Lower-case dotted name without trailing dot ("" for the root). */
  name: string;
  /** Whether every label is plain LDH/underscore (otherwise never allowed). */
  wellFormed: boolean;
  qtype: number;
  qclass: number;
}

export interface DnsQuery {
  id: number;
  opcode: number;
  rd: boolean;
  question: DnsQuestion;
}

export type DecodeResult =
  | { ok: true; query: DnsQuery }
  /** Answer with `rcode` (header id echoed), or drop when `id` is null. */
  | { ok: false; id: number | null; opcode: number; rd: boolean; rcode: number };

function readName(buf: Uint8Array, start: number): { labels: string[]; end: number } | null {
  const labels: string[] = [];
  let offset = start;
  let end = -1;
  let jumps = 0;
  let wireLength = 1;
  for (;;) {
    if (offset >= buf.length) return null;
    const length = buf[offset] ?? 0;
    if ((length & 0xc0) === 0xc0) {
      if (offset + 1 >= buf.length) return null;
      const pointer = ((length & 0x3f) << 8) | (buf[offset + 1] ?? 0);
      if (end === -1) end = offset + 2;
      if (++jumps > 16 || pointer >= offset) return null;
      offset = pointer;
      continue;
    }
    if ((length & 0xc0) !== 0) return null;
    if (length === 0) {
      if (end === -1) end = offset + 1;
      return { labels, end };
    }
    if (offset + 1 + length > buf.length) return null;
    wireLength += length + 1;
    if (wireLength > MAX_NAME_WIRE) return null;
    let label = "";
    for (let i = 0; i < length; i++) label += String.fromCharCode(buf[offset + 1 + i] ?? 0);
    labels.push(label);
    offset += 1 + length;
  }
}

export function decodeQuery(data: Uint8Array): DecodeResult {
  if (data.length < 12) return { ok: false, id: null, opcode: 0, rd: false, rcode: RCODE.FORMERR };
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const id = view.getUint16(0);
  const flags = view.getUint16(2);
  const opcode = (flags >> 11) & 0xf;
  const rd = (flags & FLAG_RD) !== 0;
  if ((flags & FLAG_QR) !== 0) return { ok: false, id: null, opcode, rd, rcode: RCODE.FORMERR };
  if (opcode !== 0) return { ok: false, id, opcode, rd, rcode: RCODE.NOTIMP };
  const qdcount = view.getUint16(4);
  if (qdcount !== 1) return { ok: false, id, opcode, rd, rcode: RCODE.FORMERR };
  const name = readName(data, 12);
  if (!name || name.end + 4 > data.length) return { ok: false, id, opcode, rd, rcode: RCODE.FORMERR };
  const qtype = view.getUint16(name.end);
  const qclass = view.getUint16(name.end + 2);
  const wellFormed = name.labels.every((label) => /^[A-Za-z0-9_-]{1,63}$/.test(label));
  return {
    ok: true,
    query: {
      id,
      opcode,
      rd,
      question: { labels: name.labels, name: name.labels.join(".").toLowerCase(), wellFormed, qtype, qclass },
    },
  };
}

export interface DnsAnswer {
  type: number;
  ttl: number;
  data: Uint8Array;
}

function encodeLabels(labels: readonly string[]): number[] {
  const out: number[] = [];
  for (const label of labels) {
    out.push(label.length);
    for (let i = 0; i < label.length; i++) out.push(label.charCodeAt(i) & 0xff);
  }
  out.push(0);
  return out;
}

function header(id: number, flags: number, qd: number, an: number): number[] {
  return [id >> 8, id & 0xff, flags >> 8, flags & 0xff, 0, qd, an >> 8, an & 0xff, 0, 0, 0, 0];
}

/**
 * A response to `query` (question echoed, answers pointing at it). Answers
 * that would push the message over `maxSize` are left out.
 */
export function encodeResponse(query: DnsQuery, rcode: number, answers: readonly DnsAnswer[] = [], maxSize = 512): Buffer {
  const flags = FLAG_QR | (query.opcode << 11) | (query.rd ? FLAG_RD : 0) | FLAG_RA | (rcode & 0xf);
  const question = [...encodeLabels(query.question.labels), query.question.qtype >> 8, query.question.qtype & 0xff, query.question.qclass >> 8, query.question.qclass & 0xff];
  const body: number[] = [];
  let count = 0;
  for (const answer of answers) {
    const record = [
      0xc0,
      0x0c,
      answer.type >> 8,
      answer.type & 0xff,
      0,
      CLASS_IN,
      (answer.ttl >>> 24) & 0xff,
      (answer.ttl >>> 16) & 0xff,
      (answer.ttl >>> 8) & 0xff,
      answer.ttl & 0xff,
      answer.data.length >> 8,
      answer.data.length & 0xff,
      ...answer.data,
    ];
    if (12 + question.length + body.length + record.length > maxSize) break;
    body.push(...record);
    count++;
  }
  return Buffer.from([...header(query.id, flags, 1, count), ...question, ...body]);
}

/** A header-only error response (FORMERR / NOTIMP) for queries that could not be parsed. */
export function encodeError(id: number, opcode: number, rd: boolean, rcode: number): Buffer {
  const flags = FLAG_QR | ((opcode & 0xf) << 11) | (rd ? FLAG_RD : 0) | FLAG_RA | (rcode & 0xf);
  return Buffer.from(header(id, flags, 0, 0));
}

/** A standard recursive query for `name` (tests, health checks). */
export function encodeQuery(name: string, qtype: number, id = 0x1234): Buffer {
  const labels = name.replace(/\.$/, "").split(".").filter((label) => label.length > 0);
  return Buffer.from([...header(id, FLAG_RD, 1, 0), ...encodeLabels(labels), qtype >> 8, qtype & 0xff, 0, CLASS_IN]);
}

export interface DecodedResponse {
  id: number;
  rcode: number;
  flags: number;
  name: string;
  qtype: number;
  answers: { name: string; type: number; ttl: number; data: Uint8Array }[];
}

export function decodeResponse(data: Uint8Array): DecodedResponse {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const id = view.getUint16(0);
  const flags = view.getUint16(2);
  const qd = view.getUint16(4);
  const an = view.getUint16(6);
  let offset = 12;
  let name = "";
  let qtype = 0;
  for (let i = 0; i < qd; i++) {
    const read = readName(data, offset);
    if (!read) throw new Error("bad question name");
    name = read.labels.join(".");
    qtype = view.getUint16(read.end);
    offset = read.end + 4;
  }
  const answers: DecodedResponse["answers"] = [];
  for (let i = 0; i < an; i++) {
    const read = readName(data, offset);
    if (!read) throw new Error("bad answer name");
    const type = view.getUint16(read.end);
    const ttl = view.getUint32(read.end + 4);
    const length = view.getUint16(read.end + 8);
    const start = read.end + 10;
    answers.push({ name: read.labels.join("."), type, ttl, data: data.slice(start, start + length) });
    offset = start + length;
  }
  return { id, rcode: flags & 0xf, flags, name, qtype, answers };
}
