/**
 * The one grammar of a forwarded port, for a bottle's `ports:`, `bottle up
 * -p` and `bottle port`: `PORT` (the bottle's port, on the same port of the
 * host, or a free one when that is taken) or `HOSTPORT:PORT` (docker's
 * order, host side first; a taken HOSTPORT is an error). TCP only; the host
 * address is not part of it (127.0.0.1 unless `--bind`). Each function
 * returns a problem for the user, or the parsed value.
 */

export interface PortSpec {
  /** The port in the bottle (where its server listens). */
  port: number;
  /** The host port asked for; absent: the bottle's own, or a free one when that is taken. */
  hostPort?: number;
}

export const PORT_SPEC_HINT = 'a port like 3000, or "HOSTPORT:PORT" like "8080:3000"';

function portNumber(text: string, what: string, entry: string): number | string {
  const port = Number(text);
  if (port < 1 || port > 65535) return `${what} ${text} in "${entry}" is out of range (1-65535)`;
  return port;
}

/** A port number or spec as written (a number in YAML, or text). */
export function parsePortSpec(input: string | number): PortSpec | { problem: string } {
  if (typeof input === "number") {
    if (!Number.isInteger(input)) return { problem: `expected ${PORT_SPEC_HINT}, got ${input}` };
    if (input < 1 || input > 65535) return { problem: `port ${input} is out of range (1-65535)` };
    return { port: input };
  }
  const entry = input;
  const protocol = /^(.*)\/(tcp|udp|sctp)$/i.exec(entry);
  if (protocol) {
    return protocol[2]!.toLowerCase() === "tcp"
      ? { problem: `"${entry}": ports are always TCP — write ${/^\d+$/.test(protocol[1]!) ? protocol[1] : `"${protocol[1]}"`}` }
      : { problem: `"${entry}": only TCP ports are forwarded` };
  }
  if (/^\d+-\d+(:|$)|:\d+-\d+$/.test(entry)) return { problem: `"${entry}": one port per entry, not a range — list each port` };
  if (/^[^:]+:\d+:\d+$|^\[.*\]:\d+:\d+$/.test(entry))
    return { problem: `"${entry}": the host address is not part of a port — write "${entry.replace(/^.*:(\d+:\d+)$/, "$1")}"; ports are published on 127.0.0.1 (\`--bind ADDRESS\` changes that)` };
  const match = /^(?:(\d{1,5}):)?(\d{1,5})$/.exec(entry);
  if (!match) return { problem: `expected ${PORT_SPEC_HINT}, got "${entry}"` };
  const port = portNumber(match[2]!, "port", entry);
  if (typeof port === "string") return { problem: port };
  if (match[1] === undefined) return { port };
  const hostPort = portNumber(match[1], "host port", entry);
  if (typeof hostPort === "string") return { problem: hostPort };
  return { port, hostPort };
}

/** How a spec is written back (`3000`, `8080:3000`). */
export function formatPortSpec(spec: PortSpec): string {
  return spec.hostPort === undefined ? String(spec.port) : `${spec.hostPort}:${spec.port}`;
}

/**
 * Specs that clash with an earlier one: the same bottle port twice (one
 * relay each), or one host port for two bottle ports (an implicit one
 * counts as asking for its own number). Index of the later one, and why.
 */
export function portClashes(specs: PortSpec[], name: (index: number) => string): Array<{ index: number; problem: string }> {
  const clashes: Array<{ index: number; problem: string }> = [];
  specs.forEach((spec, index) => {
    const earlier = specs.slice(0, index);
    const samePort = earlier.findIndex((other) => other.port === spec.port);
    if (samePort !== -1) {
      clashes.push({ index, problem: `port ${spec.port} is forwarded twice (also ${name(samePort)}) — keep one` });
      return;
    }
    const host = spec.hostPort ?? spec.port;
    const sameHost = earlier.findIndex((other) => (other.hostPort ?? other.port) === host);
    if (sameHost !== -1) clashes.push({ index, problem: `host port ${host} is asked for by ${name(sameHost)} too — give one of them another host port ("HOSTPORT:PORT")` });
  });
  return clashes;
}
