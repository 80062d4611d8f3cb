/**
 * Entry point of the egress gate inside its container:
 *
 *   node /opt/bottle/egress-gate.mjs /etc/bottle/egress.json
 *
 * Bundled for Node from this folder alone (node:* modules at run time); the
 * config must pass its schema (config-schema.ts). Prints `egress gate ready
 * <IPv4…>` (ready-line.ts) once the proxy and DNS listeners are bound — and,
 * with credential custody, once the CA of credential routes is made (its PEM
 * follows as `ca=<base64>`, for the bottle to trust) and Claude Code's route
 * listens; SIGHUP re-reads the config file; SIGTERM/SIGINT stop the gate.
 * Errors go to stderr.
 */
import { existsSync } from "node:fs";
import { isIPv4 } from "node:net";
import { systemInterfaces } from "./listen.ts";
import { EgressGate } from "./gate.ts";
import { egressReadyLine } from "./ready-line.ts";
import { ownRouteGateways } from "./routes.ts";
import { SPLICE_HELPER, Splicer } from "./splice.ts";

// Name lookups run on libuv's thread pool; give slow DNS more room than the default 4.
process.env.UV_THREADPOOL_SIZE ??= "16";

function fail(message: string): never {
  process.stderr.write(`egress gate: ${message}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  const configPath = process.argv[2];
  if (!configPath) {
    process.stderr.write("usage: egress-gate <config.json>\n");
    process.exit(2);
  }
  let gate: EgressGate;
  try {
    // The egress network's gateway (the Docker host) is refused even though the launch may not list it.
    gate = new EgressGate({
      configPath,
      routeGateways: ownRouteGateways(),
      splice: existsSync(SPLICE_HELPER) ? new Splicer(SPLICE_HELPER) : null,
    });
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error));
  }
  try {
    await gate.start();
  } catch (error) {
    fail(`cannot listen: ${error instanceof Error ? error.message : String(error)}`);
  }
  process.on("SIGHUP", () => {
    if (gate.reload()) process.stderr.write("egress gate: configuration reloaded\n");
  });
  const stop = (): void => {
    gate.close().then(
      () => process.exit(0),
      () => process.exit(0),
    );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  // A bug in handling one connection must not take the others down.
  process.on("uncaughtException", (error) => {
    process.stderr.write(`egress gate: unexpected error: ${error.stack ?? error.message}\n`);
  });
  process.on("unhandledRejection", (reason) => {
    process.stderr.write(`egress gate: unexpected rejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}\n`);
  });
  process.stdout.write(egressReadyLine(ownAddresses(), gate.caPem));
}

/** The container's IPv4 addresses (one per network it is on): the launch picks its egress one from the ready line. */
function ownAddresses(): string[] {
  return systemInterfaces().filter((address) => isIPv4(address) && !address.startsWith("127."));
}

void main();
