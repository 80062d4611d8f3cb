/**
 * The gate's own little CA for credential routes: made at gate start with
 * `openssl` (Node cannot create X.509 certificates), private key only in the
 * gate. The CA is name-constrained to the route hosts, so even a stolen key
 * could not vouch for any other site; one leaf certificate names them all.
 * The host reads ca.pem back and provisions it into the bottle.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** Each certificate is `<name>.pem` with its key in `<name>.key` (and its openssl config in `<name>.cnf`). */
const CA_NAME = "ca";
const LEAF_NAME = "leaf";
export const CA_CERT_FILE = `${CA_NAME}.pem`;
const CA_KEY_FILE = `${CA_NAME}.key`;
const LEAF_CERT_FILE = `${LEAF_NAME}.pem`;
const LEAF_KEY_FILE = `${LEAF_NAME}.key`;
const VALID_DAYS = "825";

export interface GateTls {
  caPem: string;
  /** The leaf certificate and its key, for the TLS server. */
  certPem: string;
  keyPem: string;
}

function run(openssl: string, args: string[], cwd: string): void {
  try {
    execFileSync(openssl, args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim().split("\n").slice(-2).join(" ") ?? "";
    const code = (error as { code?: string }).code;
    throw new Error(`openssl ${args[0] ?? ""} failed${code === "ENOENT" ? " (openssl is not installed)" : ""}${stderr ? `: ${stderr}` : ""}`);
  }
}

/** A CN-safe rendering of the bottle name. */
function label(text: string): string {
  return text.replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 48);
}

/**
 * One `openssl req -x509` run: a new P-256 key and its certificate for `cn`
 * with `extensions`, self-signed, or signed by the CA when `signing` names it.
 */
function makeCertificate(openssl: string, dir: string, name: string, cn: string, extensions: string[], signing: string[] = []): void {
  const config = `${name}.cnf`;
  writeFileSync(
    join(dir, config),
    ["[req]", "distinguished_name = dn", "prompt = no", "x509_extensions = ext", "[dn]", `CN = ${cn}`, "[ext]", ...extensions, ""].join("\n"),
    { mode: 0o600 },
  );
  const curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  run(openssl, ["req", "-x509", "-new", "-config", config, ...curve, "-keyout", `${name}.key`, "-out", `${name}.pem`, "-days", VALID_DAYS, ...signing], dir);
}

/**
 * Makes (or reuses, when the gate restarts in the same container) the CA
 * and a leaf certificate for `hosts` under `dir`.
 */
export function ensureGateTls(dir: string, hosts: readonly string[], bottle: string, openssl = "openssl"): GateTls {
  if (hosts.length === 0) throw new Error("no hosts to make a certificate for");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (!existsSync(join(dir, CA_CERT_FILE)) || !existsSync(join(dir, CA_KEY_FILE))) {
    const constraints = hosts.map((host) => `permitted;DNS:${host}`).join(",");
    makeCertificate(openssl, dir, CA_NAME, `bottle gate CA ${label(bottle)}`, [
      "basicConstraints = critical,CA:TRUE,pathlen:0",
      "keyUsage = critical,keyCertSign,cRLSign",
      "subjectKeyIdentifier = hash",
      `nameConstraints = critical,${constraints}`,
    ]);
  }
  // The leaf in one run (`req -CA`, OpenSSL 3): a CSR and `x509 -req` took about 50 ms of the gate's start, this about 12.
  makeCertificate(
    openssl,
    dir,
    LEAF_NAME,
    hosts[0] ?? "",
    [
      "basicConstraints = critical,CA:FALSE",
      "keyUsage = critical,digitalSignature",
      "extendedKeyUsage = serverAuth",
      `subjectAltName = ${hosts.map((host) => `DNS:${host}`).join(",")}`,
      "subjectKeyIdentifier = hash",
      "authorityKeyIdentifier = keyid",
    ],
    ["-CA", CA_CERT_FILE, "-CAkey", CA_KEY_FILE, "-set_serial", `0x${randomBytes(12).toString("hex")}`],
  );
  const caPem = readFileSync(join(dir, CA_CERT_FILE), "utf8");
  return { caPem, certPem: readFileSync(join(dir, LEAF_CERT_FILE), "utf8"), keyPem: readFileSync(join(dir, LEAF_KEY_FILE), "utf8") };
}
