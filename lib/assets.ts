import agentDockerfile from "../assets/agent.Dockerfile" with { type: "text" };
import bottleRun from "../assets/bottle-run.sh" with { type: "text" };
import bottleSession from "../assets/bottle-session.sh" with { type: "text" };
import bottleAttach from "../assets/bottle-attach.sh" with { type: "text" };
import bottleClaudeSync from "../assets/bottle-claude-sync.sh" with { type: "text" };
import bottleSplice from "../assets/bottle-splice.c" with { type: "text" };
import gateDockerfile from "../assets/gate.Dockerfile" with { type: "text" };
import gateEntrypoint from "../assets/gate-entrypoint.sh" with { type: "text" };
import installPackages from "../assets/install-packages.sh" with { type: "text" };
import egressGate from "../assets/gen/egress-gate.bundle" with { type: "text" };
import gitAccessHook from "../assets/git/access-hook.sh" with { type: "text" };
import gitForGitleaks from "../assets/git/git-for-gitleaks.sh" with { type: "text" };
import gitleaksRules from "../assets/git/gitleaks.toml" with { type: "text" };
import gitLib from "../assets/git/lib.sh" with { type: "text" };
import gitPreReceive from "../assets/git/pre-receive.sh" with { type: "text" };
import gitScanMerge from "../assets/git/scan-merge.sh" with { type: "text" };
import gitStart from "../assets/git/start.sh" with { type: "text" };
import sshGate from "../assets/gen/ssh-gate.bundle" with { type: "text" };
import sshStart from "../assets/ssh/start.sh" with { type: "text" };
import plumbingDockerfile from "../assets/plumbing/Dockerfile" with { type: "text" };
import portRelay from "../assets/gen/port-relay.bundle" with { type: "text" };
import tmuxConf from "../assets/tmux.conf" with { type: "text" };

/**
 * Everything the binary needs at run time, embedded at build time. Build
 * contexts are written from these strings, never read from the source tree.
 */
export const assets = {
  agentDockerfile,
  bottleRun,
  bottleSession,
  bottleAttach,
  bottleClaudeSync,
  bottleSplice,
  gateDockerfile,
  gateEntrypoint,
  egressGate,
  gitAccessHook,
  gitForGitleaks,
  gitleaksRules: gitleaksRules as string,
  gitLib,
  gitPreReceive,
  gitScanMerge,
  gitStart,
  installPackages,
  plumbingDockerfile,
  portRelay,
  sshGate,
  sshStart,
  tmuxConf,
} as const;

export type AssetName = keyof typeof assets;
