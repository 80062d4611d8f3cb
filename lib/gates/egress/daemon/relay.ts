/**
 * Bytes between the client and an upstream: a tunnel (`relay`) or one
 * exchange's sockets, under the byte budget, the idle timeout and the
 * maximum duration; bulk downloads go to bottle-splice.
 */
import type * as net from "node:net";
import { type Counters, chargeBytesOut } from "./admission.ts";
import { type DownloadSplice, closeWhenWritten, downloadSplice } from "./splice.ts";
import type { GateState } from "./state.ts";

/** Common timers for a tunnel or exchange: idle timeout and max duration. */
function limitTimers(state: GateState, started: number, onExpire: (reason: string) => void): { touch(): void; clear(): void } {
  const { idleTimeoutMs, maxTunnelMs } = state.config.limits;
  let idle: ReturnType<typeof setTimeout> | null = null;
  let max: ReturnType<typeof setTimeout> | null = null;
  if (idleTimeoutMs > 0) idle = setTimeout(() => onExpire("idle-timeout"), idleTimeoutMs);
  if (maxTunnelMs > 0) max = setTimeout(() => onExpire("max-duration"), Math.max(0, started + maxTunnelMs - Date.now()));
  return {
    touch(): void {
      idle?.refresh();
    },
    clear(): void {
      if (idle) clearTimeout(idle);
      if (max) clearTimeout(max);
    },
  };
}

/**
 * What a tunnel and an exchange share: `finish` settles once (timers cleared;
 * forced: both sockets destroyed), the limit timers (`touch` on traffic),
 * `sendUp`, the one way bytes go upstream: charged to the byte budget, counted,
 * with backpressure on the client; and `download`, the hand-over of a bulky
 * download to bottle-splice (splice.ts), which counts into `counters.bytesIn`,
 * touches the timers, ends with `finish` on failure and calls `downloadEof`
 * when the upstream ended.
 */
export function pairing(
  state: GateState,
  client: net.Socket,
  upstream: net.Socket,
  counters: Counters,
  started: number,
  settle: (reason: string) => void,
  downloadEof: () => void,
): { finish(reason: string, force: boolean): void; sendUp(chunk: Buffer): boolean; touch(): void; isDone(): boolean; download: DownloadSplice } {
  let done = false;
  const finish = (reason: string, force: boolean): void => {
    if (done) return;
    done = true;
    timers.clear();
    download.kill();
    if (force) {
      client.destroy();
      upstream.destroy();
    }
    settle(reason);
  };
  const timers = limitTimers(state, started, (reason) => finish(reason, true));
  const touch = (): void => timers.touch();
  const download = downloadSplice(state.splice, upstream, client, counters, touch, (end) => (end === "eof" ? downloadEof() : finish(end, true)));
  // Teardown from elsewhere (the gate closing) must not leave the copy running.
  client.once("close", () => download.kill());
  upstream.once("close", () => download.kill());
  const sendUp = (chunk: Buffer): boolean => {
    if (chunk.length === 0) return true;
    if (!chargeBytesOut(state, chunk.length)) {
      finish("bytes-out-limit", true);
      return false;
    }
    counters.bytesOut += chunk.length;
    if (!upstream.write(chunk)) client.pause();
    return true;
  };
  return { finish, sendUp, touch, isDone: () => done, download };
}

/**
 * Splices client ↔ upstream until both sides are closed, enforcing the byte
 * budget, idle timeout and max duration. Resolves with why it ended.
 */
export function relay(state: GateState, client: net.Socket, upstream: net.Socket, counters: Counters, initial: Buffer, started: number): Promise<string> {
  return new Promise((resolve) => {
    let clientClosed = false;
    let upstreamClosed = false;
    const { finish, sendUp, touch, download } = pairing(state, client, upstream, counters, started, resolve, () => {
      client.end();
      closeWhenWritten(upstream);
    });
    client.on("data", (chunk: Buffer) => {
      touch();
      sendUp(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      touch();
      counters.bytesIn += chunk.length;
      if (!client.write(chunk)) upstream.pause();
      else download.tryStart();
    });
    upstream.on("drain", () => client.resume());
    client.on("drain", () => {
      if (!download.tryStart()) upstream.resume();
    });
    client.on("end", () => upstream.end());
    upstream.on("end", () => client.end());
    client.on("error", () => finish("client-error", true));
    upstream.on("error", () => finish("upstream-error", true));
    client.on("close", () => {
      clientClosed = true;
      if (upstreamClosed) finish("closed", false);
      else upstream.end();
    });
    upstream.on("close", () => {
      upstreamClosed = true;
      if (clientClosed) finish("closed", false);
      else client.end();
    });
    if (initial.length > 0 && !sendUp(initial)) return;
    client.resume();
  });
}
