/**
 * A credential route's response body on its way to the bottle: decoded
 * (the gate asks for identity, but a server may still compress), then every
 * credential in every form replaced by its placeholder as it streams.
 */
import { Transform, type TransformCallback } from "node:stream";
import * as zlib from "node:zlib";
import type { Scrubber } from "./custody.ts";

/** The decoder of a Content-Encoding: null for none, "unsupported" for one the gate cannot read (and so cannot scrub). */
export function decoderFor(encoding: string): Transform | null | "unsupported" {
  switch (encoding) {
    case "":
    case "identity":
      return null;
    case "gzip":
    case "x-gzip":
      return zlib.createGunzip();
    case "deflate":
      return zlib.createInflate();
    case "br":
      return zlib.createBrotliDecompress();
    default:
      return "unsupported";
  }
}

export class ScrubTransform extends Transform {
  constructor(private readonly scrubber: Scrubber) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const out = this.scrubber.push(chunk);
    callback(null, out.length > 0 ? out : undefined);
  }

  override _flush(callback: TransformCallback): void {
    const rest = this.scrubber.flush();
    callback(null, rest.length > 0 ? rest : undefined);
  }
}
