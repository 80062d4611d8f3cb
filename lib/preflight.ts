import { describeArgv } from "./exec.ts";
import { custodyRows } from "./gates/custody/index.ts";
import { branchBase } from "./git/bottle-branch.ts";
import { agentCommand, DETACH_KEY } from "./session.ts";
import type { Plan } from "./plan.ts";
import { resourceRows } from "./resources.ts";
import { formatForwards } from "./ports/format.ts";

/** The preflight: what a launch will grant, shown before anything is created. */

function paren(text: string): string {
  return text.startsWith("(") ? text : `(${text})`;
}

function list(items: string[], max = 4): string {
  if (items.length === 0) return "none";
  const shown = items.slice(0, max).join(", ");
  return items.length > max ? `${shown}, … +${items.length - max} more` : shown;
}

/** What a mount shares and what it keeps from the bottle: said before every such launch; where a copy's or branch's work goes. */
function workspaceGitRows(plan: Plan): Array<[string, string]> {
  const git = plan.workspace.git;
  const notes = (plan.workspaceNotes ?? []).map((note): [string, string] => ["note", note]);
  const branch = plan.workspace.branch;
  if (plan.workspace.mode === "branch" && branch)
    return [
      ["git", `a checkout of ${branch.base.slice(0, 12)} on branch ${branch.name ?? `${branchBase(plan.name)} (or -N when taken)`}; the host's tree and branch are not touched`],
      ["", "what it leaves uncommitted is committed to that branch when it stops; bottle diff / merge / apply take the work"],
      ...notes,
    ];
  if (plan.workspace.mode === "copy")
    return git?.repo ? [["git", `a copy with your uncommitted changes; its commits come back on branch ${branchBase(plan.name)} when it stops (bottle diff / merge / apply)`], ...notes] : notes;
  if (plan.workspace.mode !== "mount" || !git) return [];
  const rows: Array<[string, string]> = [];
  if (git.repo) rows.push(["git", `.git is the bottle's own (history shared read-only); its commits come back only as objects, on branch ${branchBase(plan.name)}`]);
  else if (git.enclosing) rows.push(["git", `the workspace is inside the repository ${git.enclosing}: the agent sees no history (run from ${git.enclosing} to give it one)`]);
  else rows.push(["git", "not a repository; a .git the agent makes stays in the bottle"]);
  if (git.submodules.length) rows.push(["", `submodules' .git read-only: ${list(git.submodules.map((s) => s.path))}`]);
  rows.push(["note", "the working tree is shared live: files the agent writes there are yours to run or not (build scripts, editor tasks)"]);
  return rows;
}

/** What runs: the user's command, or Claude Code (in a session, or headless) with the flags it gets. */
function commandRow(plan: Plan): string {
  const printed = describeArgv(agentCommand(plan, plan.command, plan.claude).slice(1), Infinity);
  if (plan.command.length) return `${printed}${plan.interactive ? ` (in a session: ${DETACH_KEY} detaches)` : ""}`;
  return `${printed}${plan.interactive ? ` (in a session: ${DETACH_KEY} detaches)` : " (headless: its answer on stdout)"}${plan.home ? "; Claude's home kept for this workspace" : ""}`;
}

/** What of the user's Claude setup comes in, item by item (copies; the host's ~/.claude is only read). */
export function claudeSetupRows(plan: Plan): Array<[string, string]> {
  const setup = plan.claudeSetup ?? { items: [], notes: [] };
  const items = setup.items.map(([what, detail], index): [string, string] => [index === 0 ? "claude" : "", `${what}: ${detail}`]);
  if (!items.length) items.push(["claude", "nothing of your ~/.claude (a bottle's claude: says what comes in)"]);
  return [...items, ...setup.notes.map((note): [string, string] => ["note", note])];
}

/** "16 hosts: presets npm@1, github@1; api.anthropic.com, …": a preset by its name, not its hosts. */
function egressRow(plan: Plan): string {
  const presets = plan.egress.presets ?? [];
  const fromPresets = new Set(presets.flatMap((preset) => preset.hosts));
  const named = presets.length ? `presets ${presets.map((preset) => `${preset.name}@${preset.version}`).join(", ")}; ` : "";
  return `${plan.egress.allow.length} hosts: ${named}${list(plan.egress.allow.filter((host) => !fromPresets.has(host)))}`;
}

export function formatPreflight(plan: Plan, missingImages: string[]): string {
  const gitRemotes = plan.git?.remotes ?? [];
  const sshHosts = plan.ssh?.hosts ?? [];
  const image = `${plan.bottleImage}${missingImages.length ? ` (will build: ${missingImages.join(", ")})` : " (present)"}`;
  const workspace =
    plan.workspace.mode === "none"
      ? "none (empty /workspace)"
      : plan.workspace.mode === "branch"
        ? `branch of ${plan.workspace.hostPath} → ${plan.workspace.containerPath}`
      : `${plan.workspace.mode} ${plan.workspace.hostPath} → ${plan.workspace.containerPath}`;
  const rows: Array<[string, string]> = [
    ["agent", `${plan.agent.name}  ${paren(plan.agent.source)}`],
    ["bottle", `${plan.bottle.name}  ${paren(plan.bottle.sources.join(" → "))}`],
    ["image", image],
    ["egress", egressRow(plan)],
    ["env", list(plan.env.map((e) => `${e.name} (${e.kind})`), 8)],
    ...custodyRows(plan.custody),
    ...claudeSetupRows(plan),
    ["workspace", workspace],
    ...workspaceGitRows(plan),
    ["gates", `egress (HTTP/HTTPS allowlist proxy + DNS)${gitRemotes.length ? " + git (mirror, gitleaks on push)" : ""}${sshHosts.length ? " + ssh (listed hosts, keys stay in the gate)" : ""} on ${plan.containers.gate}`],
    ...gitRemotes.map((remote): [string, string] => ["git", `${remote.name} → ${remote.upstream} (via git gate ${remote.url}; pushes scanned by gitleaks)`]),
    ...sshHosts.map((host): [string, string] => ["ssh", `${host.user ? `${host.user}@` : ""}${host.host}:${host.port} (via ssh gate; key ${host.identityFile} stays in the gate)`]),
    ...resourceRows(plan.resources),
    ...(plan.ports?.length ? [["ports", `${formatForwards(plan.ports)} (host → bottle only, through a relay per port)`] as [string, string]] : []),
    ["runtime", plan.runtime === "runsc" ? "gVisor (runsc)" : "runc (gVisor not available)"],
    ["command", commandRow(plan)],
  ];
  return rows.map(([key, value]) => `  ${key.padEnd(10)} ${value}`).join("\n");
}
