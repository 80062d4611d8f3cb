/**
 * Entry point of a port's relay, inside its container (the gate image):
 *
 *   node /opt/bottle/port-relay.mjs PORT TARGET_IP:TARGET_PORT
 *
 * Bundled for Node from this folder alone. Listens on PORT on its ports-side
 * address (relay.ts), forwards every connection to TARGET_IP:TARGET_PORT
 * and nowhere else, and prints its ready line (ready-line.ts). SIGTERM and
 * SIGINT stop it; errors go to stderr (the relay's `docker logs`).
 */
import { networkInterfaces } from "node:os";
import { relayReadyLine } from "./ready-line.ts";
import { listenAddresses, type RelayTarget, startRelay } from "./relay.ts";

/** Enough for a dev server's page, its assets and its hot-reload sockets; a flood stops here, not at the pids limit. */
const MAX_CONNECTIONS = 256;
const KEEP_ALIVE_MS = 30_000;

function fail(message: string): never {
  process.stderr.write(`port relay: ${message}\n`);
  process.exit(2);
}

function port(text: string | undefined): number {
  const value = Number(text);
  if (!/^\d+$/.test(text ?? "") || value < 1 || value > 65535) fail(`not a port: ${text ?? "(none)"}`);
  return value;
}

function target(text: string | undefined): RelayTarget {
  const match = /^(\d+\.\d+\.\d+\.\d+):(\d+)$/.exec(text ?? "");
  if (!match) fail(`not an IPv4 address and port: ${text ?? "(none)"}`);
  return { host: match[1]!, port: port(match[2]) };
}

async function main(): Promise<void> {
  const [listenPort, to] = [port(process.argv[2]), target(process.argv[3])];
  const addresses = listenAddresses(networkInterfaces(), to);
  try {
    await startRelay({ addresses, port: listenPort, target: to, maxConnections: MAX_CONNECTIONS, keepAliveMs: KEEP_ALIVE_MS });
  } catch (error) {
    fail(`cannot listen on port ${listenPort}: ${(error as Error).message}`);
  }
  process.on("SIGTERM", () => process.exit(0));
  process.on("SIGINT", () => process.exit(0));
  process.on("uncaughtException", (error) => process.stderr.write(`port relay: unexpected error: ${error.stack ?? error.message}\n`));
  process.stdout.write(relayReadyLine(addresses.map((address) => `${address}:${listenPort}`), to));
}

void main();
