import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A throwaway CA and server certificates for made-up host names (openssl on the host). */

function openssl(args: string[], cwd: string): void {
  const out = Bun.spawnSync(["openssl", ...args], { cwd, stdout: "pipe", stderr: "pipe" });
  if (out.exitCode !== 0) throw new Error(`openssl ${args.join(" ")} failed: ${out.stderr.toString()}`);
}

export interface TestCa {
  dir: string;
  caPem: string;
  caPath: string;
  /** Issue a server certificate for these names; returns { cert, key } PEM texts. */
  issue(names: string[]): { cert: string; key: string };
}

export function makeTestCa(): TestCa {
  const dir = mkdtempSync(join(tmpdir(), "bottle-ca-"));
  openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bottle test CA"], dir);
  let serial = 0;
  return {
    dir,
    caPath: join(dir, "ca.pem"),
    caPem: readFileSync(join(dir, "ca.pem"), "utf8"),
    issue(names) {
      const id = `server${++serial}`;
      openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", `${id}.key`, "-out", `${id}.csr`, "-subj", `/CN=${names[0]}`], dir);
      Bun.write(join(dir, `${id}.ext`), `subjectAltName=${names.map((n) => `DNS:${n}`).join(",")}\n`);
      openssl(["x509", "-req", "-in", `${id}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", `${id}.pem`, "-days", "2", "-extfile", `${id}.ext`], dir);
      return { cert: readFileSync(join(dir, `${id}.pem`), "utf8"), key: readFileSync(join(dir, `${id}.key`), "utf8") };
    },
  };
}

/** An HTTPS echo server for Node.js, cert and key passed in env. */
export const HTTPS_ECHO_SERVER = `
const https = require("node:https");
https.createServer({ cert: process.env.TLS_CERT, key: process.env.TLS_KEY }, (req, res) => {
  res.writeHead(200, { "content-type": "text/plain" });
  res.end("secure hello from " + req.headers.host + " " + req.url + "\\n");
}).listen(443, "0.0.0.0", () => console.log("listening"));
`;
