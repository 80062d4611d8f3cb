import { copyFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { runBottle, type Sandbox } from "./cli.ts";

/**
 * Forwarded ports in tests: a dev server in the bottle (the attack image's
 * Python; test/fixtures/ports/web-server.py), where the host reaches a port,
 * plain HTTP and a WebSocket echo from the host, and host ports held by a
 * process of the test's own.
 */

const WEB_SERVER = join(import.meta.dir, "..", "fixtures", "ports", "web-server.py");

/** Starts the fixture server inside the bottle (as its agent) on `listen` (`PORT` or `ADDR:PORT` each); resolves once it listens. */
export async function startWebServer(sandbox: Sandbox, name: string, listen: string[]): Promise<void> {
  // The workspace is mounted: the server goes in through it.
  copyFileSync(WEB_SERVER, join(sandbox.project, ".web-server.py"));
  const started = await runBottle(sandbox, ["exec", name, "--", "sh", "-c", `nohup python3 /workspace/.web-server.py ${listen.join(" ")} >/tmp/web-server.log 2>&1 &`]);
  if (started.exitCode !== 0) throw new Error(`starting the web server failed: ${started.stderr}`);
  for (let attempt = 0; attempt < 100; attempt++) {
    const log = await runBottle(sandbox, ["exec", name, "--", "cat", "/tmp/web-server.log"]);
    if (log.stdout.includes("listening")) return;
    if (/Error|Traceback/.test(log.stdout)) throw new Error(`the web server failed: ${log.stdout}`);
    await Bun.sleep(100);
  }
  throw new Error("the web server never listened");
}

/** The bottle's forwarded ports as `bottle port NAME --json` lists them. */
export async function forwarded(sandbox: Sandbox, name: string): Promise<Array<{ port: number; hostIp: string; hostPort: number }>> {
  const out = await runBottle(sandbox, ["port", name, "--json"]);
  if (out.exitCode !== 0) throw new Error(`bottle port ${name} failed: ${out.stderr}`);
  return JSON.parse(out.stdout);
}

/** Where on the host the bottle's `port` answers. */
export async function hostPortOf(sandbox: Sandbox, name: string, port: number): Promise<number> {
  const found = (await forwarded(sandbox, name)).find((entry) => entry.port === port);
  if (!found) throw new Error(`${name} does not forward ${port}`);
  return found.hostPort;
}

/** The host port `bottle port NAME PORT` printed (`127.0.0.1:49153`). */
export function printedHostPort(stdout: string): number {
  return Number(stdout.trim().split(":").pop());
}

/** GET `url`'s body, or `error:…` (never throws). */
export async function httpGet(url: string, timeoutMs = 3000): Promise<string> {
  try {
    return await (await fetch(url, { signal: AbortSignal.timeout(timeoutMs) })).text();
  } catch (error) {
    return `error:${(error as Error).name}`;
  }
}

/** Opens a WebSocket, sends each message (waiting `pauseMs` before each after the first), resolves with what came back. */
export function webSocketEcho(url: string, messages: string[], pauseMs = 0, timeoutMs = 15_000): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url);
    const received: string[] = [];
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`no echo of every message within ${timeoutMs} ms (got ${JSON.stringify(received)})`));
    }, timeoutMs);
    const sendFrom = (index: number) => {
      if (index >= messages.length) return;
      socket.send(messages[index]!);
    };
    socket.onopen = () => sendFrom(0);
    socket.onmessage = (event) => {
      received.push(String(event.data));
      if (received.length === messages.length) {
        clearTimeout(timer);
        socket.close();
        resolve(received);
      } else setTimeout(() => sendFrom(received.length), pauseMs);
    };
    socket.onerror = () => {
      clearTimeout(timer);
      reject(new Error(`WebSocket to ${url} failed (got ${JSON.stringify(received)})`));
    };
  });
}

/** A port no one on this machine listens on now (bound to 0 and let go). */
export async function freeHostPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A plain listener of the test's own on `port` (or any), holding it on 0.0.0.0 until closed: "another process". */
export async function holdHostPort(port = 0): Promise<{ port: number; server: Server }> {
  const server = createServer((socket) => socket.end("held by the test\n"));
  await new Promise<void>((resolve) => server.listen(port, "0.0.0.0", resolve));
  return { port: (server.address() as { port: number }).port, server };
}
