import { existsSync, readFileSync } from "node:fs";
import { BottleError } from "./errors.ts";

/**
 * Extra CA certificates (corporate TLS inspection): the bottle's `ca_certs`
 * plus the host bundle named by NODE_EXTRA_CA_CERTS / SSL_CERT_FILE. They are
 * trusted in image builds and inside bottles.
 */

export function extraCaBundlesFromEnv(env: Record<string, string | undefined>): string[] {
  const paths = [env.NODE_EXTRA_CA_CERTS, env.SSL_CERT_FILE].filter((p): p is string => Boolean(p && existsSync(p)));
  return [...new Set(paths)];
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Split bundles into single certificates (update-ca-certificates wants one per file), deduplicated, in order. */
export function collectCertificates(paths: string[]): string[] {
  const seen = new Set<string>();
  const certs: string[] = [];
  for (const path of paths) {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch {
      throw new BottleError(`cannot read CA certificate file ${path}`, { fix: "fix the path in `ca_certs` or the NODE_EXTRA_CA_CERTS / SSL_CERT_FILE variable" });
    }
    const blocks = text.match(PEM_BLOCK) ?? [];
    if (blocks.length === 0) throw new BottleError(`${path} holds no PEM certificate`, { fix: "point it at a PEM file (-----BEGIN CERTIFICATE-----)" });
    for (const block of blocks) {
      const normalized = block.replace(/\r/g, "").trim();
      if (!seen.has(normalized)) {
        seen.add(normalized);
        certs.push(`${normalized}\n`);
      }
    }
  }
  return certs;
}
