import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { AGENT_UID, makeSandbox, runBottle, writeFile, type Sandbox } from "../helpers/cli.ts";
import { describeDocker, objectsWithLabel, removeLabelled, uniqueId } from "../helpers/docker.ts";
import { sshKeygen } from "../helpers/world.ts";

/**
 * Workspaces that would leak what the gates hold are refused before anything
 * exists (mount and copy alike), `--workspace-unsafe` launches one with a
 * warning, a root-owned 0700 workspace is refused up front, `up --dry-run`
 * names every unset ${VAR}, and `bottle doctor` checks Claude Code's
 * credential without showing it. On the real engine; "nothing created" is
 * read from docker by the agents' labels and from the state dir.
 */

const TOKEN = `sk-ant-oat01-wss-${crypto.randomUUID().replace(/-/g, "")}`;

describeDocker("workspaces that cannot leak what the gates hold", () => {
  let sandbox: Sandbox;
  const agent = uniqueId("wss");
  const agents = { plain: agent, git: `${agent}-git`, copy: `${agent}-copy`, vars: `${agent}-vars` };
  /** A directory of the sandbox owned by the agent image's user, as a project of the user's would be. */
  const ownedDir = (name: string) => {
    const path = join(sandbox.home, name);
    mkdirSync(path, { recursive: true });
    chownSync(path, AGENT_UID, AGENT_UID);
    return path;
  };
  let withSsh = "";
  let gitWorkspace = "";

  const nothingCreated = () => {
    for (const name of Object.values(agents)) expect(objectsWithLabel(`bottle.agent=${name}`)).toEqual({ containers: [], networks: [] });
    const states = join(sandbox.state, "bottle", "bottles");
    expect(existsSync(states) ? readdirSync(states) : []).toEqual([]);
  };

  /** A refusal: exit 1, one error naming `what`, a fix offering a narrower dir and saying what copy would do, and nothing created. */
  const expectRefused = (out: { exitCode: number; stderr: string }, what: string) => {
    expect(out.exitCode).toBe(1);
    expect(out.stderr).toContain("would put what the gates keep out into the bottle");
    expect(out.stderr).toContain(what);
    expect(out.stderr).toContain("fix: run bottle on a narrower directory");
    expect(out.stderr).toContain("`workspace: copy` would copy the same files in");
    expect(out.stderr).toContain("--workspace-unsafe");
    nothingCreated();
  };

  beforeAll(() => {
    sandbox = makeSandbox();
    writeFile(join(sandbox.config, "agents", `${agents.plain}.md`), "---\ndescription: workspace safety\n---\n");

    withSsh = ownedDir("with-ssh");
    writeFile(join(withSsh, ".ssh", "id_ed25519"), "not really a key\n");
    writeFile(join(withSsh, "README"), "a project that keeps a .ssh\n");

    // A bottle whose git gate's identity file lies inside the workspace.
    gitWorkspace = ownedDir("git-ws");
    mkdirSync(join(gitWorkspace, "deploy"));
    const identity = sshKeygen(join(gitWorkspace, "deploy"), "id_ed25519", "bottle-test-wss");
    const hostKey = readFileSync(`${identity}.pub`, "utf8").trim().split(/\s+/).slice(0, 2).join(" ");
    writeFile(
      join(sandbox.config, "bottles", "gitws.yaml"),
      ["git:", "  remotes:", "    origin:", '      upstream: "git@git.wss.test:me/project.git"', `      identity_file: ${identity}`, `      known_host_key: "git.wss.test ${hostKey}"`, ""].join("\n"),
    );
    writeFile(join(sandbox.config, "agents", `${agents.git}.md`), "---\nbottle: gitws\n---\n");

    writeFile(join(sandbox.config, "bottles", "copyws.yaml"), "workspace: copy\n");
    writeFile(join(sandbox.config, "agents", `${agents.copy}.md`), "---\nbottle: copyws\n---\n");

    writeFile(
      join(sandbox.config, "bottles", "vars.yaml"),
      [
        "env:",
        "  LOG_LEVEL: debug",
        "  DATABASE_URL: ${WSS_UNSET_DB}",
        "egress:",
        "  routes:",
        "    - host: api.wss.test",
        '      auth: { header: Authorization, scheme: Bearer, token: "${WSS_UNSET_TOKEN}" }',
        "",
      ].join("\n"),
    );
    writeFile(join(sandbox.config, "agents", `${agents.vars}.md`), "---\nbottle: vars\n---\n");
  });

  afterAll(() => removeLabelled(...Object.values(agents).map((name) => `bottle.agent=${name}`)));

  test("the home is refused, exit 1, naming it; nothing is created", async () => {
    const out = await runBottle(sandbox, ["up", agents.plain, "--yes", "--workspace", sandbox.home, "--", "true"]);
    expectRefused(out, "workspace ~ would put");
    expect(out.stderr).toContain("it is ~ (your home directory)");
  });

  test("a directory with a .ssh is refused, naming it", async () => {
    const out = await runBottle(sandbox, ["up", agents.plain, "--yes", "--", "true"], { cwd: withSsh });
    expectRefused(out, "it holds ~/with-ssh/.ssh (SSH keys)");
  });

  test("a directory holding the git gate's identity file is refused, naming it", async () => {
    const out = await runBottle(sandbox, ["up", agents.git, "--yes", "--workspace", gitWorkspace, "--", "true"]);
    expectRefused(out, "it holds ~/git-ws/deploy/id_ed25519 (the git gate's identity file)");
  });

  test("/ is refused", async () => {
    const out = await runBottle(sandbox, ["up", agents.plain, "--yes", "--workspace", "/", "--", "true"]);
    expectRefused(out, "it is / (the whole file system)");
  });

  test("workspace: copy is checked the same way (it would copy the .ssh in)", async () => {
    const out = await runBottle(sandbox, ["up", agents.copy, "--yes", "--workspace", withSsh, "--", "true"]);
    expectRefused(out, "it holds ~/with-ssh/.ssh (SSH keys)");
    expect(out.stderr).toContain("--workspace-unsafe to copy it anyway");
  });

  test("--workspace-unsafe launches it, with one warning naming what comes in", async () => {
    const out = await runBottle(sandbox, ["up", agents.plain, "--yes", "--workspace-unsafe", "--", "sh", "-c", "ls /workspace/.ssh"], { cwd: withSsh });
    expect(out.exitCode).toBe(0);
    expect(out.stdout).toContain("id_ed25519");
    const warnings = out.stderr.split("\n").filter((line) => line.includes("--workspace-unsafe:"));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("workspace ~/with-ssh: it holds ~/with-ssh/.ssh (SSH keys)");
    nothingCreated();
  });

  test("a root-owned 0700 workspace is refused up front, saying why and how; nothing is created", async () => {
    const rootOwned = join(sandbox.home, "root-owned");
    mkdirSync(rootOwned);
    chownSync(rootOwned, 0, 0);
    chmodSync(rootOwned, 0o700);
    expect(statSync(rootOwned).uid).toBe(0);
    const out = await runBottle(sandbox, ["up", agents.plain, "--yes", "--workspace", rootOwned, "--", "sh", "-c", "touch /workspace/x"]);
    expect(out.exitCode).toBe(1);
    expect(out.stderr).toContain("workspace ~/root-owned is owned by root: the agent runs as the workspace's owner, and never as root");
    expect(out.stderr).toContain("fix: give it to a user (chown -R USER ~/root-owned)");
    expect(out.stderr).toContain("`workspace: copy`");
    expect(existsSync(join(rootOwned, "x"))).toBe(false);
    nothingCreated();
    // The fix works: given to a user, the agent writes there, and the file is the user's.
    chownSync(rootOwned, AGENT_UID, AGENT_UID);
    const fixed = await runBottle(sandbox, ["up", agents.plain, "--yes", "--workspace", rootOwned, "--", "sh", "-c", "echo made-inside > /workspace/x"]);
    expect(fixed.exitCode).toBe(0);
    expect(readFileSync(join(rootOwned, "x"), "utf8")).toBe("made-inside\n");
    expect(statSync(join(rootOwned, "x")).uid).toBe(AGENT_UID);
  });

  test("up --dry-run prints the plan, then names both unset variables with file:line:col, exit 1", async () => {
    const out = await runBottle(sandbox, ["up", agents.vars, "--dry-run"]);
    expect(out.exitCode).toBe(1);
    expect(out.stdout).toContain("api.wss.test");
    expect(out.stderr).toContain("~/.config/bottle/bottles/vars.yaml:3:17: env.DATABASE_URL: copies ${WSS_UNSET_DB} from the host environment, but WSS_UNSET_DB is not set");
    expect(out.stderr).toContain("~/.config/bottle/bottles/vars.yaml:7:61: egress.routes (api.wss.test).auth.token: copies ${WSS_UNSET_TOKEN}");
    expect(out.stderr).toContain("fix: export WSS_UNSET_DB, WSS_UNSET_TOKEN before running bottle");
    // --json: the plan on stdout, still parseable; the error on stderr.
    const json = await runBottle(sandbox, ["up", agents.vars, "--dry-run", "--json"]);
    expect(json.exitCode).toBe(1);
    expect(JSON.parse(json.stdout).bottle.name).toBe("vars");
    expect(json.stderr).toContain("WSS_UNSET_DB");
    // With both set, the dry run says nothing more and exits 0.
    const set = await runBottle(sandbox, ["up", agents.vars, "--dry-run"], { env: { WSS_UNSET_DB: "postgres://db.wss.test/x", WSS_UNSET_TOKEN: "wss-route-token-value" } });
    expect(set.exitCode).toBe(0);
    expect(`${set.stdout}${set.stderr}`).not.toContain("wss-route-token-value");
    nothingCreated();
  });

  test("bottle doctor: the Claude Code credential, present (named, never shown) and absent (with the fix), also --json", async () => {
    const without = await runBottle(sandbox, ["doctor"]);
    expect(without.stdout).toMatch(/^warn\s+Claude Code credential\s+none: CLAUDE_CODE_OAUTH_TOKEN and ANTHROPIC_API_KEY are not set/m);
    expect(without.stdout).toContain("fix: run `claude setup-token`, then export CLAUDE_CODE_OAUTH_TOKEN=<the token>");
    const withToken = await runBottle(sandbox, ["doctor"], { env: { CLAUDE_CODE_OAUTH_TOKEN: TOKEN } });
    expect(withToken.stdout).toMatch(/^ok\s+Claude Code credential\s+OAuth token from \$CLAUDE_CODE_OAUTH_TOKEN \(host environment\)/m);
    expect(`${withToken.stdout}${withToken.stderr}`).not.toContain(TOKEN);
    expect(withToken.exitCode).toBe(without.exitCode);
    const json = await runBottle(sandbox, ["doctor", "--json"], { env: { ANTHROPIC_API_KEY: TOKEN } });
    expect(json.stdout).not.toContain(TOKEN);
    const row = (JSON.parse(json.stdout).checks as Array<{ name: string; status: string; detail: string }>).find((check) => check.name === "Claude Code credential");
    expect(row?.status).toBe("ok");
    expect(row?.detail).toContain("$ANTHROPIC_API_KEY");
  });
});
