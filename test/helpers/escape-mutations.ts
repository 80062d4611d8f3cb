/**
 * The gate mutations of the escape suite's self-check (escape-mutate.ts):
 * data only, so that a unit test can check each still applies to the bundle
 * (test/unit/gates/egress/escape-mutations.test.ts) without Docker.
 */

/** [text in the bundle, replacement] — each switches off one defence. */
export const MUTATIONS: Record<string, [string, string]> = {
  /** Every host is on the allowlist. */
  allowlist: ["  checkHost(target, port) {\n", '  checkHost(target, port) {\n    return { ok: true, entry: "MUTANT" };\n'],
  /** Every name is answered as if allowed (safe to try: the gate answers names itself and forwards none). */
  "dns-allowlist": ['if (!target || target.kind !== "name" || !state.policy.nameAllowed(target.host)) {', 'if (!target || target.kind !== "name") {'],
  /** Resolved addresses are not vetted (private, loopback, metadata, Docker host). */
  vet: ["  vet(target, addresses) {\n", "  vet(target, addresses) {\n    return { ok: true, addresses: addresses.map((a) => unmap(parseIp(a))) };\n"],
  /** DLP finds nothing. */
  dlp: ["  scan(texts) {\n", "  scan(texts) {\n    return null;\n"],
  /** Any SNI is accepted on a CONNECT tunnel. */
  sni: ["} else if (first.sni !== target.host) {", "} else if (false) {"],
  /** A ClientHello with Encrypted Client Hello passes on its outer SNI. */
  ech: ["if (first.ech) {", "if (false) {"],
  /** The Host header is not compared with the request's host and port. */
  "host-header": ["function hostHeaderNames(value, target, port, defaultPort) {\n", "function hostHeaderNames(value, target, port, defaultPort) {\n  return true;\n"],
};

/**
 * The port relay's bundle (lib/gates/ports/daemon/), the same way: [text,
 * replacement], each switches off one defence of its code.
 */
export const RELAY_MUTATIONS: Record<string, [string, string]> = {
  /** The relay listens on the bottle's network too (where the bottle could then reach it). */
  "relay-listen-internal": ["    if (onNetworkOf(info, target.host))\n      continue;\n", ""],
  /** A client names where its connection goes: `CONNECT host:port`, or an absolute URL (an open proxy). */
  "relay-any-target": [
    "function forward(client, options) {\n",
    "function forward(client, options) {\n" +
      "  client.once(\"data\", (first) => {\n" +
      "    const text = first.toString(\"latin1\");\n" +
      "    const asked = /^(?:CONNECT |[A-Z]+ https?:\\/\\/)\\[?([^\\]\\s/:]+)\\]?:(\\d+)/.exec(text);\n" +
      "    const to = asked ? { host: asked[1], port: Number(asked[2]) } : options.target;\n" +
      "    const upstream = net.connect(to.port, to.host, () => {\n" +
      "      if (text.startsWith(\"CONNECT \")) client.write(\"HTTP/1.1 200 Connection established\\r\\n\\r\\n\");\n" +
      "      else upstream.write(first);\n" +
      "      client.pipe(upstream);\n" +
      "      upstream.pipe(client);\n" +
      "    });\n" +
      "    const end = () => { client.destroy(); upstream.destroy(); };\n" +
      "    client.on(\"error\", end);\n" +
      "    upstream.on(\"error\", end);\n" +
      "  });\n" +
      "  return;\n",
  ],
};
