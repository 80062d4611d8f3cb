import { isIP } from "node:net";

/**
 * Validation of the host-like strings a bottle names. Each function returns
 * a problem (a message for the user) or undefined when the entry is fine.
 * Host names are not secrets, so messages may quote them; URLs are quoted
 * with any credentials removed.
 */

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

export function isHostName(host: string): boolean {
  const lower = host.toLowerCase();
  if (lower.length === 0 || lower.length > 253) return false;
  return lower.split(".").every((label) => LABEL.test(label));
}

/** A URL or `host/path` where a bare host was expected: what to write instead. */
function hostOnlyHint(entry: string, keepPort: boolean): { shown: string; hint?: string } | undefined {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(entry)) {
    try {
      const url = new URL(entry);
      const shown = redactUrl(url, entry);
      const host = url.hostname.replace(/^\[|\]$/g, "");
      return { shown, hint: host ? (keepPort && url.port ? `${host}:${url.port}` : host) : undefined };
    } catch {
      return { shown: entry.replace(/\/\/[^/@]*@/, "//…@") };
    }
  }
  if (entry.includes("/") && !/^[0-9a-f:.]+\/\d+$/i.test(entry)) {
    const host = entry.split("/")[0] ?? "";
    return { shown: entry, hint: host || undefined };
  }
  return undefined;
}

/** A URL as the user wrote it, or with its credentials cut out when it has any. */
export function redactUrl(url: URL, original: string): string {
  if (!url.username && !url.password) return original;
  const copy = new URL(url.href);
  copy.username = "";
  copy.password = "";
  return copy.href.replace("://", "://…@");
}

function notAHost(entry: string, expected: string, keepPort: boolean): string | undefined {
  const url = hostOnlyHint(entry, keepPort);
  if (!url) return undefined;
  return `expected ${expected}, got "${url.shown}"${url.hint ? ` — write the host only: ${url.hint}` : ""}`;
}

/** `egress.allow`: `host`, `*.domain`, `host:port`, `*.domain:port`. */
export function allowEntryProblem(entry: string): string | undefined {
  const asUrl = notAHost(entry, "a host name", true);
  if (asUrl) return asUrl;
  if (entry.trim() !== entry || entry === "") return `expected a host name, got "${entry}"`;
  let host = entry;
  const portMatch = /^(.*):(\d+)$/.exec(entry);
  if (portMatch && !isIP(entry)) {
    host = portMatch[1]!;
    const port = Number(portMatch[2]);
    if (port < 1 || port > 65535) return `port ${portMatch[2]} in "${entry}" is out of range (1-65535)`;
  }
  // An IP literal is allowed only when listed here explicitly (the gate refuses all others).
  if (isIP(host) || isIP(host.replace(/^\[|\]$/g, "")) || isIP(entry)) return undefined;
  if (host.endsWith(".")) return `expected a host name, got "${entry}" — drop the trailing dot: ${host.slice(0, -1)}`;
  let name = host;
  if (host.startsWith("*.")) {
    name = host.slice(2);
    if (!name.includes(".") && isHostName(name)) {
      return `"${entry}" would allow a whole top-level domain — name a domain, like *.example.com`;
    }
  }
  if (name.includes("*")) return `"${entry}": a wildcard may only be the first label, like *.example.com`;
  if (!isHostName(name)) return `expected a host name, got "${entry}"`;
  return undefined;
}

/** `egress.allow_private`: a host name, an IPv4/IPv6 address, or a CIDR. */
export function privateEntryProblem(entry: string): string | undefined {
  const expected = "a host name, IP address or CIDR";
  const asUrl = notAHost(entry, expected, false);
  if (asUrl) return asUrl;
  const cidr = /^([^/]+)\/(\d{1,3})$/.exec(entry);
  if (cidr) {
    const family = isIP(cidr[1]!);
    if (family === 0) return `expected ${expected}, got "${entry}" — the part before / must be an IP address`;
    const max = family === 4 ? 32 : 128;
    if (Number(cidr[2]) > max) return `prefix /${cidr[2]} in "${entry}" is longer than ${max} bits`;
    return undefined;
  }
  if (isIP(entry)) return undefined;
  if (entry.includes("*")) return `"${entry}": wildcards are not allowed in allow_private; list each host, or use a CIDR`;
  if (!isHostName(entry)) return `expected ${expected}, got "${entry}"`;
  return undefined;
}

/** `ssh.hosts[].host`: a host name or an IP address, nothing else. */
export function sshHostProblem(entry: string): string | undefined {
  const asUrl = notAHost(entry, "a host name", false);
  if (asUrl) return asUrl;
  if (/^[^@]+@/.test(entry)) return `expected a host name, got "${entry}" — put the user in user: ${entry.split("@")[0]}`;
  if (/:\d+$/.test(entry) && !isIP(entry)) return `expected a host name, got "${entry}" — put the port in port: ${entry.split(":").pop()}`;
  if (isIP(entry) || isHostName(entry)) return undefined;
  return `expected a host name, got "${entry}"`;
}

/** `git.remotes.*.upstream`: `ssh://[user@]host[:port]/path` or scp-style `user@host:path`. */
export function upstreamProblem(entry: string): string | undefined {
  if (/^ssh:\/\//i.test(entry)) {
    try {
      const url = new URL(entry);
      if (url.password) return `the upstream URL contains a password; the git gate authenticates with identity_file instead — remove it`;
      if (!url.hostname || url.pathname.length <= 1) return `expected ssh://host/path/to/repo.git, got "${entry}"`;
      return undefined;
    } catch {
      return `expected ssh://host/path/to/repo.git, got "${entry}"`;
    }
  }
  const scp = /^(?:([A-Za-z0-9._-]+)@)?([A-Za-z0-9.-]+):(?!\/\/)(.+)$/.exec(entry);
  if (scp && isHostName(scp[2]!)) return undefined;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(entry)) {
    let shown = entry;
    let hint = "";
    try {
      const url = new URL(entry);
      shown = redactUrl(url, entry);
      const path = url.pathname.replace(/^\//, "");
      if (url.hostname && path) hint = `: git@${url.hostname}:${path}`;
    } catch {
      shown = entry.replace(/\/\/[^/@]*@/, "//…@");
    }
    return `expected an SSH upstream (ssh://… or git@host:path), got "${shown}" — the git gate pushes over SSH${hint ? `; write it as${hint}` : ""}`;
  }
  return `expected an SSH upstream (ssh://git@host/path or git@host:path), got "${entry}"`;
}

const KEY_TYPES = [
  "ssh-ed25519",
  "ssh-rsa",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "sk-ssh-ed25519@openssh.com",
  "sk-ecdsa-sha2-nistp256@openssh.com",
];

/** A pinned host key: `<type> <base64>` (a known_hosts line without the host part). */
export function hostKeyProblem(entry: string): string | undefined {
  const parts = entry.trim().split(/\s+/);
  const typeIndex = parts.findIndex((part) => KEY_TYPES.includes(part));
  const fix = "a host key like \"ssh-ed25519 AAAAC3Nza…\" (get it with: ssh-keyscan -t ed25519 <host>)";
  if (typeIndex === -1) return `expected ${fix}`;
  if (typeIndex > 1) return `expected ${fix}`;
  const key = parts[typeIndex + 1];
  if (!key || !/^[A-Za-z0-9+/]+={0,3}$/.test(key)) return `expected ${fix}`;
  return undefined;
}

/** `<type> <base64>` out of a key or a known_hosts line. */
export function normalizeHostKey(entry: string): string {
  const parts = entry.trim().split(/\s+/);
  const typeIndex = parts.findIndex((part) => KEY_TYPES.includes(part));
  return typeIndex === -1 ? entry.trim() : `${parts[typeIndex]} ${parts[typeIndex + 1] ?? ""}`;
}

/** `egress.routes[].host`: a host name, optionally `:port` — no wildcard, no IP address, no URL. */
export function routeHostProblem(entry: string): string | undefined {
  const base = allowEntryProblem(entry);
  if (base) return base;
  const host = /^(.*):(\d+)$/.exec(entry)?.[1] ?? entry;
  if (host.startsWith("*.")) return `"${entry}": a route names one host, not a wildcard`;
  if (isIP(host) || isIP(host.replace(/^\[|\]$/g, "")) || isIP(entry)) return `"${entry}": a route needs a host name, not an IP address (the gate presents a certificate for it)`;
  return undefined;
}

/** `egress.routes[].paths[]`: an absolute path prefix without query, dot segments or encoded slashes. */
export function pathPrefixProblem(entry: string): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(entry)) return `expected a path like /repos/acme/, got a URL — put the host in host:`;
  if (!entry.startsWith("/")) return `expected a path starting with /, got "${entry}"`;
  if (/[\s?#\\]/.test(entry)) return `"${entry}": a path prefix has no query, fragment, spaces or backslashes`;
  if (/%2e|%2f|%5c/i.test(entry) || entry.includes("//") || entry.split("/").some((segment) => segment === "." || segment === "..")) {
    return `"${entry}": no dot segments, empty segments or encoded slashes in a path prefix`;
  }
  return undefined;
}

/** `auth.upstream`: an https:// URL without credentials, query or fragment. */
export function upstreamUrlProblem(entry: string): string | undefined {
  let url: URL;
  try {
    url = new URL(entry);
  } catch {
    return `expected an https:// URL, got "${entry.replace(/\/\/[^/@]*@/, "//…@")}"`;
  }
  const shown = redactUrl(url, entry);
  if (url.username || url.password) return `the URL contains credentials; put the token in auth.token instead — got "${shown}"`;
  if (url.protocol !== "https:") return `expected an https:// URL (the gate talks TLS to the upstream), got "${shown}"`;
  // The query may hold a key: never echoed.
  if (entry.includes("?") || entry.includes("#")) return `expected an https:// URL without query or fragment, got "${url.origin}${url.pathname}?…"`;
  if (isIP(url.hostname.replace(/^\[|\]$/g, ""))) return `expected a host name in the URL, not an IP address, got "${shown}"`;
  return undefined;
}
