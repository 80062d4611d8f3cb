/**
 * node:http and node:tls, loaded only when credential custody needs them,
 * and never with `import * as`: Node builds an ES namespace of node:http by
 * reading every export, and its lazy WebSocket export pulls in crypto, tls
 * and http2. That cost about 40 ms of every gate's start, custody or not.
 */
import type * as http from "node:http";
import type * as tls from "node:tls";

export function httpModule(): typeof http {
  return process.getBuiltinModule("node:http");
}

export function tlsModule(): typeof tls {
  return process.getBuiltinModule("node:tls");
}
