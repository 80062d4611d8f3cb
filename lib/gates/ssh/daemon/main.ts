/**
 * Entry point of the SSH gate daemon inside the gate container:
 *
 *   node /etc/bottle/ssh/ssh-gate.mjs /etc/bottle/ssh/ssh.json
 *
 * Bundled for Node from this folder alone (node:* modules at run time). The
 * config must pass its schema (config.ts). Listens on the address of the
 * gate's alias on the bottle network, then writes the config's readyFile
 * (the start script waits for it). SIGTERM/SIGINT stop it; errors go to
 * stderr (the gate's `docker logs`).
 */
import { lookup } from "node:dns/promises";
import { readFileSync, writeFileSync } from "node:fs";
import { type SshGateConfig, parseSshGateConfig } from "./config.ts";
import { SshGate } from "./gate.ts";

function fail(message: string): never {
  process.stderr.write(`ssh gate: ${message}\n`);
  process.exit(1);
}

/** The gate's own address on the bottle network (Docker's DNS may take a moment after start). */
async function listenAddress(name: string): Promise<string> {
  for (let attempt = 0; attempt < 100; attempt++) {
    try {
      return (await lookup(name, { family: 4 })).address;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  fail(`cannot find this gate's address on the bottle network (alias ${name})`);
}

async function main(): Promise<void> {
  const path = process.argv[2];
  if (!path) fail("usage: ssh-gate <config.json>");
  let config: SshGateConfig;
  try {
    config = parseSshGateConfig(readFileSync(path, "utf8"));
  } catch (error) {
    fail(`cannot read ${path}: ${(error as Error).message}`);
  }
  const address = await listenAddress(config.listen);
  const gate = new SshGate({ config, address });
  try {
    await gate.start();
  } catch (error) {
    fail(`cannot listen on ${address}: ${(error as Error).message}`);
  }
  const stop = () => void gate.close().finally(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.on("uncaughtException", (error) => process.stderr.write(`ssh gate: unexpected error: ${error.stack ?? error.message}\n`));
  process.on("unhandledRejection", (reason) => process.stderr.write(`ssh gate: unexpected rejection: ${String(reason)}\n`));
  writeFileSync(config.readyFile, `${address}\n`);
}

void main();
