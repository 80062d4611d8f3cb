/**
 * A strict HTTP/1.x message-head parser and a chunked-body scanner, enough
 * for a forward proxy that must not be confused about where a request ends
 * (no obs-fold, no CL+TE, no conflicting Content-Length, no bare LF).
 * Pure code; heads are handled as latin1 "byte strings".
 */
import { type Header, TOKEN, headerValues } from "./headers.ts";

export const MAX_HEAD = 64 * 1024;
export const MAX_HEADERS = 200;

export interface RequestHead {
  method: string;
  target: string;
  version: "HTTP/1.0" | "HTTP/1.1";
  headers: Header[];
}

export interface ResponseHead {
  version: string;
  status: number;
  reason: string;
  headers: Header[];
}

/** Index just past the blank line ending the head, or -1 while incomplete. */
export function findHeadEnd(buf: Buffer): number {
  const at = buf.indexOf("\r\n\r\n", 0, "latin1");
  return at === -1 ? -1 : at + 4;
}

// Field values: HTAB, SP, VCHAR, obs-text. No CR, LF, NUL or other controls.
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const TARGET = /^[\x21-\x7e\x80-\xff]+$/;

function parseHeaders(lines: string[]): Header[] | string {
  if (lines.length > MAX_HEADERS) return "too many header fields";
  const headers: Header[] = [];
  for (const line of lines) {
    if (line.startsWith(" ") || line.startsWith("\t")) return "obsolete line folding";
    const colon = line.indexOf(":");
    if (colon <= 0) return "malformed header field";
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return "malformed header name";
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "");
    if (!FIELD_VALUE.test(value)) return "invalid characters in a header value";
    headers.push([name, value]);
  }
  return headers;
}

function splitLines(head: string): string[] | string {
  // The head ends in CRLF CRLF; every line must end in CRLF (a bare LF is refused).
  const body = head.slice(0, -4);
  const lines = body.split("\r\n");
  for (const line of lines) if (line.includes("\n") || line.includes("\r")) return "bare CR or LF in the head";
  return lines;
}

/** Parses a request head (including the final CRLF CRLF). Returns an error message on failure. */
export function parseRequestHead(head: string): RequestHead | string {
  const lines = splitLines(head);
  if (typeof lines === "string") return lines;
  const [requestLine = "", ...rest] = lines;
  const parts = requestLine.split(" ");
  if (parts.length !== 3) return "malformed request line";
  const [method = "", target = "", version = ""] = parts;
  if (!TOKEN.test(method)) return "malformed method";
  if (!TARGET.test(target)) return "malformed request target";
  if (version !== "HTTP/1.1" && version !== "HTTP/1.0") return "unsupported HTTP version";
  const headers = parseHeaders(rest);
  if (typeof headers === "string") return headers;
  return { method, target, version, headers };
}

export function parseResponseHead(head: string): ResponseHead | string {
  const lines = splitLines(head);
  if (typeof lines === "string") return lines;
  const [statusLine = "", ...rest] = lines;
  const match = /^(HTTP\/1\.[01]) ([0-9]{3})(?: (.*))?$/.exec(statusLine);
  if (!match) return "malformed status line";
  const headers = parseHeaders(rest);
  if (typeof headers === "string") return headers;
  return { version: match[1] ?? "HTTP/1.1", status: Number(match[2]), reason: match[3] ?? "", headers };
}

export type BodyFraming = { kind: "none" } | { kind: "length"; length: number } | { kind: "chunked" } | { kind: "error"; reason: string };

/** How a request body is delimited; refuses the ambiguous combinations used for smuggling. */
export function requestFraming(headers: readonly Header[]): BodyFraming {
  const te = headerValues(headers, "transfer-encoding");
  const cl = headerValues(headers, "content-length");
  if (te.length > 0) {
    if (cl.length > 0) return { kind: "error", reason: "both Transfer-Encoding and Content-Length" };
    const codings = te.join(",").split(",").map((s) => s.trim().toLowerCase()).filter((s) => s !== "");
    if (codings.length !== 1 || codings[0] !== "chunked") return { kind: "error", reason: "unsupported Transfer-Encoding" };
    return { kind: "chunked" };
  }
  if (cl.length > 0) {
    const values = new Set(cl.join(",").split(",").map((s) => s.trim()));
    if (values.size !== 1) return { kind: "error", reason: "conflicting Content-Length" };
    const [value = ""] = values;
    if (!/^[0-9]{1,15}$/.test(value)) return { kind: "error", reason: "malformed Content-Length" };
    const length = Number(value);
    return length === 0 ? { kind: "none" } : { kind: "length", length };
  }
  return { kind: "none" };
}

/**
 * Follows a chunked body as it streams by, to find where it ends.
 * `feed` returns how many bytes of `chunk` belong to the body, or an error;
 * `onPayload` is told where in `chunk` each run of chunk data lies.
 */
export class ChunkedScanner {
  private state: "size" | "data" | "data-cr" | "data-lf" | "trailer" = "size";
  private line = "";
  private remaining = 0;
  done = false;

  feed(chunk: Uint8Array, onPayload?: (start: number, end: number) => void): number | { error: string } {
    let i = 0;
    while (i < chunk.length && !this.done) {
      const byte = chunk[i] ?? 0;
      switch (this.state) {
        case "size":
        case "trailer": {
          i++;
          if (byte !== 0x0a) {
            this.line += String.fromCharCode(byte);
            if (this.line.length > 4096) return { error: "chunk line too long" };
            continue;
          }
          if (!this.line.endsWith("\r")) return { error: "bare LF in chunked body" };
          const line = this.line.slice(0, -1);
          this.line = "";
          if (this.state === "trailer") {
            if (line === "") this.done = true;
            else if (line.includes("\r")) return { error: "bare CR in trailer" };
            continue;
          }
          const sizeText = (line.split(";")[0] ?? "").trim();
          if (!/^[0-9A-Fa-f]{1,12}$/.test(sizeText)) return { error: "malformed chunk size" };
          this.remaining = parseInt(sizeText, 16);
          this.state = this.remaining === 0 ? "trailer" : "data";
          continue;
        }
        case "data": {
          const take = Math.min(this.remaining, chunk.length - i);
          if (take > 0) onPayload?.(i, i + take);
          i += take;
          this.remaining -= take;
          if (this.remaining === 0) this.state = "data-cr";
          continue;
        }
        case "data-cr":
          if (byte !== 0x0d) return { error: "missing CRLF after chunk" };
          i++;
          this.state = "data-lf";
          continue;
        case "data-lf":
          if (byte !== 0x0a) return { error: "missing CRLF after chunk" };
          i++;
          this.state = "size";
          continue;
      }
    }
    return i;
  }
}
