/**
 * What the proxy, the CONNECT path and credential custody read from the gate
 * as they handle a request: read at request time, so that a reload applies
 * to new requests.
 */
import type * as net from "node:net";
import type { AuditSink } from "./audit.ts";
import type { EgressConfig } from "./config-schema.ts";
import type { Dlp } from "./dlp.ts";
import type { ByteBudget, RateLimiter } from "./limits.ts";
import type { Policy } from "./policy.ts";
import type { Splicer } from "./splice.ts";

/** Resolves a host name to all its addresses (node:dns lookup in the gate; a fake in tests). */
export type Resolver = (host: string) => Promise<string[]>;
/** Opens a TCP connection to an already vetted IP address. */
export type UpstreamConnector = (address: string, port: number) => net.Socket;

export interface Timing {
  /** Wait this long for the TLS ClientHello after `200 Connection established`. */
  helloTimeoutMs: number;
  /** On an explicitly listed non-443 port: wait this long for the client to speak before assuming a server-speaks-first protocol. */
  serverFirstWaitMs: number;
  connectTimeoutMs: number;
  resolveTimeoutMs: number;
  /** Longest time to wait for a complete request head. */
  headTimeoutMs: number;
}

export const DEFAULT_TIMING: Timing = {
  helloTimeoutMs: 10_000,
  serverFirstWaitMs: 1_500,
  connectTimeoutMs: 10_000,
  resolveTimeoutMs: 10_000,
  headTimeoutMs: 30_000,
};

/**
 * Credential custody's TLS termination: CONNECTs to a credential route's
 * host:port are spliced to a local TLS server instead of the upstream.
 */
export interface TlsTerminator {
  terminates(host: string, port: number): boolean;
  /** A connection to the local TLS server (null when it is gone). */
  connect(): Promise<net.Socket | null>;
}

/** What the proxy needs from the gate; read at request time so reloads apply to new requests. */
export interface GateState {
  readonly config: EgressConfig;
  readonly policy: Policy;
  readonly dlp: Dlp;
  readonly audit: AuditSink;
  readonly rate: RateLimiter;
  readonly budget: ByteBudget;
  readonly resolve: Resolver;
  readonly connect: UpstreamConnector;
  readonly timing: Timing;
  /** Registers a socket so that closing the gate ends it. */
  track(socket: net.Socket): void;
  logError(message: string): void;
  /** Set when the bottle has credential routes. */
  readonly terminator?: TlsTerminator | null;
  /** Set when bottle-splice is there to take over bulk downloads. */
  readonly splice?: Splicer | null;
}
