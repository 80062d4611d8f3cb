import { assets } from "../../assets.ts";
import type { Docker } from "../../docker.ts";
import { BottleError } from "../../errors.ts";
import { caContextFiles, ensureImage, gateImageSpec } from "../../images.ts";
import { objectsBundle } from "../../git/objects-bundle.ts";
import { createTar, type TarEntry } from "../../tar.ts";
import { GIT_GATE_DIR } from "./config.ts";

/**
 * The git gate's secret scan, run on the host's side of a bottle's work:
 * `bottle merge` and `bottle apply` put the commits a bottle's branch
 * brings through the same gitleaks rules, in the same way (lib.sh's
 * scan_range: binary files, textconv and gitleaks:allow handled as the gate
 * does), in a throwaway gate container with no network and the repository's
 * git dir mounted read-only. One scan, wherever a bottle's commits go.
 */

export interface SecretFinding {
  file: string;
  line: number;
  rule: string;
  description: string;
  commit: string;
}

type Env = Record<string, string | undefined>;

/** Where the repository's bundle waits in the scan container on a remote engine (scan-merge.sh unbundles it). */
const SCAN_BUNDLE = "/tmp/objects.bundle";

/** The scan's files, where lib.sh expects them (no remote: nothing leaves). */
function scanEntries(): TarEntry[] {
  const root = GIT_GATE_DIR.replace(/^\//, "");
  const file = (path: string, content: string, mode = 0o600): TarEntry => ({ path: `${root}/${path}`, content, mode, uid: 0, gid: 0 });
  return [
    { path: root, type: "dir", mode: 0o700, uid: 0, gid: 0 },
    { path: `${root}/bin`, type: "dir", mode: 0o700, uid: 0, gid: 0 },
    file("gate.env", "BOTTLE=host-merge\nGIT_LOG=/dev/null\nGIT_LOG_MAX_BYTES=0\nGIT_MIRRORS=/nonexistent\n"),
    file("lib.sh", assets.gitLib),
    file("bin/git", assets.gitForGitleaks, 0o700),
    file("gitleaks.toml", assets.gitleaksRules),
    file("scan-merge", assets.gitScanMerge, 0o700),
  ];
}

/**
 * The secrets in the commits reachable from `tip` and from none of
 * `exclude`, in the repository whose git dir is `gitDir`. Throws when the
 * scan itself fails: what cannot be scanned is not taken.
 *
 * On a remote engine (`remote`), which cannot mount this machine's files,
 * the repository's objects travel in with the scan's files as one bundle,
 * as they do into a bottle there (lib/git/objects-bundle.ts).
 */
export async function scanCommits(docker: Docker, gitDir: string, tip: string, exclude: string[], remote: boolean, env: Env = process.env): Promise<SecretFinding[]> {
  const { ref } = await ensureImage(docker, gateImageSpec(caContextFiles([], env), env), env);
  const entries = scanEntries();
  if (remote) {
    const bundle = await objectsBundle(docker.exec, gitDir);
    if (!bundle) throw new BottleError(`the repository at ${gitDir} could not be bundled for the secret scan on the remote engine, so nothing is taken`, { fix: "check `git bundle create` there" });
    entries.push({ path: SCAN_BUNDLE.replace(/^\//, ""), content: bundle, mode: 0o600, uid: 0, gid: 0 });
  }
  const repository = remote ? [] : ["--mount", `type=bind,source=${gitDir},target=/repo.git,readonly`];
  const argv = [
    "run", "--rm", "-i", "--network", "none", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
    "--read-only", "--tmpfs", "/tmp", "--tmpfs", "/etc/bottle:exec",
    ...repository,
    "--label", "bottle.role=scan",
    "--entrypoint", "bash", ref.tag,
    "-c", `tar -x -C / && exec ${GIT_GATE_DIR}/scan-merge "$@"`, "scan", tip, ...exclude,
  ]; // prettier-ignore
  const out = await docker.run(argv, { stdin: createTar(entries), check: false });
  if (out.exitCode === 0) return [];
  if (out.exitCode === 1) return JSON.parse(out.stdout.trim().split("\n").pop() ?? "[]") as SecretFinding[];
  throw new BottleError("the secret scan of the bottle's commits failed, so they are not taken", {
    details: out.stderr.trim().split("\n").slice(-5).join("\n"),
    fix: "check `docker info` and try again; the scan runs in the gate image",
  });
}

/** One line per finding, as the git gate prints them (values redacted). */
export function formatFindings(findings: SecretFinding[]): string {
  return findings.map((finding) => `  ${finding.file}:${finding.line}  rule ${finding.rule} (${finding.description})  commit ${finding.commit.slice(0, 12)}`).join("\n");
}
