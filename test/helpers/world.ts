import { join } from "node:path";
import { docker, sh, uniqueId } from "./docker.ts";

/**
 * The "outside world" of a test: containers the test starts itself, under
 * made-up names, on networks the test (or the bottle) created. Nothing real
 * is ever contacted.
 */

/** A tiny HTTP server for Node.js: answers every request with its host and path. */
export const ECHO_SERVER = `
const http = require("node:http");
http.createServer((req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("hello from " + req.headers.host + " " + req.url + (body ? " body=" + body : "") + "\\n");
  });
}).listen(80, "0.0.0.0", () => console.log("listening"));
`;

export interface WorldHost {
  container: string;
  remove(): void;
}

/**
 * Start an echo server (on the gate image, which has Node.js) attached to
 * `network` under the given made-up names.
 */
export function startEchoHost(
  image: string,
  network: string,
  aliases: string[],
  label: string,
  server: { script: string; env?: Record<string, string> } = { script: ECHO_SERVER },
): WorldHost {
  const container = uniqueId("world");
  const args = ["run", "-d", "--name", container, "--label", label, "--network", network];
  for (const alias of aliases) args.push("--network-alias", alias);
  // Values (certificates) travel by name from this process's environment.
  for (const key of Object.keys(server.env ?? {})) args.push("--env", key);
  const out = Bun.spawnSync(["docker", ...args, "--entrypoint", "node", image, "-e", server.script], {
    env: { ...process.env, ...server.env },
    stdout: "pipe",
    stderr: "pipe",
  });
  if (out.exitCode !== 0) throw new Error(`starting ${container} failed: ${out.stderr.toString()}`);
  waitForLogLine(container, "listening");
  return { container, remove: () => void Bun.spawnSync(["docker", "rm", "-f", container]) };
}

export function waitForLogLine(container: string, text: string, timeoutMs = 20_000): void {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const out = Bun.spawnSync(["docker", "logs", container], { stdout: "pipe", stderr: "pipe" });
    if ((out.stdout.toString() + out.stderr.toString()).includes(text)) return;
    Bun.sleepSync(100);
  }
  throw new Error(`${container} never printed "${text}"`);
}

export function containerIp(container: string, network: string): string {
  return docker("inspect", "--format", `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`, container);
}

/** A passphrase-less ed25519 key pair `dir/file` (+ `.pub`), made with the host's ssh-keygen. */
export function sshKeygen(dir: string, file: string, comment: string): string {
  const path = join(dir, file);
  sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path]);
  return path;
}

/**
 * An outside SSH server: `image` (openssh-server, `user` made with a locked
 * password and no host keys) started detached with `keys` mounted read-only;
 * `keys/host_key` becomes its host key and `keys/id_ed25519.pub` the user's
 * only authorized key. Returns the container name.
 */
export function startSshd(options: { prefix: string; image: string; keys: string; label: string; user: string; home: string; ports?: number[] }): string {
  const name = uniqueId(options.prefix);
  const { user, home } = options;
  docker(
    "run", "-d", "--name", name, "--label", options.label,
    "--mount", `type=bind,source=${options.keys},target=/keys,readonly`,
    "--entrypoint", "sh", options.image, "-c",
    [
      "install -m 600 /keys/host_key /etc/ssh/ssh_host_ed25519_key",
      `install -d -o ${user} -g ${user} -m 700 ${home}/.ssh`,
      `install -o ${user} -g ${user} -m 600 /keys/id_ed25519.pub ${home}/.ssh/authorized_keys`,
      `exec /usr/sbin/sshd -D -e ${(options.ports ?? []).map((port) => `-p ${port} `).join("")}-o PasswordAuthentication=no -h /etc/ssh/ssh_host_ed25519_key`,
    ].join(" && "),
  );
  return name;
}
