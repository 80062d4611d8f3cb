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
