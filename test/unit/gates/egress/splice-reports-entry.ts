/**
 * bottle-splice alone, under Node, as the gate runs it (fds 3, 4 and 5), fed
 * in bursts with pauses, then left quiet without an EOF. Prints one JSON
 * line: every report the helper sent, with when it came.
 *
 *   node splice-reports.mjs HELPER BURSTS BURST_BYTES PAUSE_MS QUIET_MS
 */
import { spawn } from "node:child_process";
import * as net from "node:net";
import type { Readable } from "node:stream";

const [helper = "", bursts, burstBytes, pauseMs, quietMs] = process.argv.slice(2);

/** Both ends of one loopback TCP connection. */
async function socketPair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const accepted = new Promise<net.Socket>((resolve) => server.once("connection", resolve));
  const client = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1");
  const far = await accepted;
  server.close();
  return [client, far];
}

const fdOf = (socket: net.Socket): number => (socket as unknown as { _handle: { fd: number; readStop(): number } })._handle.fd;

const [source, feeder] = await socketPair();
const [dest, drain] = await socketPair();
source.pause();
(source as unknown as { _handle: { readStop(): number } })._handle.readStop();
let received = 0;
drain.on("data", (chunk: Buffer) => (received += chunk.length));

const started = performance.now();
const reports: { at: number; total: number }[] = [];
const proc = spawn(helper, [String(process.pid)], { stdio: ["ignore", "ignore", "ignore", fdOf(source), fdOf(dest), "pipe"] });
let pending = "";
// Node's typings know five stdio entries; the report pipe is the sixth.
((proc.stdio as ReadonlyArray<unknown>)[5] as Readable).on("data", (chunk: Buffer) => {
  pending += chunk.toString("latin1");
  const lines = pending.split("\n");
  pending = lines.pop() ?? "";
  for (const line of lines) reports.push({ at: performance.now() - started, total: Number(line) });
});

const burst = Buffer.alloc(Number(burstBytes), 120);
for (let i = 0; i < Number(bursts); i++) {
  feeder.write(burst);
  await new Promise((resolve) => setTimeout(resolve, Number(pauseMs)));
}
const lastWrite = performance.now() - started;
await new Promise((resolve) => setTimeout(resolve, Number(quietMs)));
proc.kill("SIGKILL");
process.stdout.write(`${JSON.stringify({ sent: Number(bursts) * burst.length, received, lastWrite, reports })}\n`);
process.exit(0);
