import { describe, expect, test } from "bun:test";
import { custodyPlan } from "../../../lib/gates/custody/index.ts";
import { checkLaunchValues } from "../../../lib/launch/values.ts";
import { ManifestError, resolveAgentAndBottle } from "../../../lib/manifest/index.ts";
import type { Plan } from "../../../lib/plan.ts";
import { sandboxEachTest, thrown } from "../manifest/helpers.ts";

/**
 * The values a launch needs, checked before anything is asked or created:
 * what `bottle up` runs first and `bottle up --dry-run` runs after the plan.
 */

const each = sandboxEachTest();

const BOTTLE = `env:
  DATABASE_URL: \${DB_URL}
  DB_PASSWORD: "?Database password"
egress:
  routes:
    - host: api.github.com
      auth: { header: Authorization, scheme: Bearer, token: "\${GH_TOKEN}" }
auth:
  token: \${MY_CLAUDE}
`;

async function planned(hostEnv: Record<string, string | undefined>) {
  each.box.bottle("default", BOTTLE);
  const resolved = await resolveAgentAndBottle({ projectDir: each.box.project, env: each.box.env });
  const plan = { custody: custodyPlan(resolved.bottle, hostEnv) } as Pick<Plan, "custody"> as Plan;
  return { resolved, plan };
}

describe("checkLaunchValues", () => {
  test("every unset ${VAR}, of the env and of the gate's credentials, in one error with file:line:col and one fix", async () => {
    const hostEnv = { ...each.box.env };
    const launch = await planned(hostEnv);
    const error = thrown(() => checkLaunchValues(launch, hostEnv, true)) as ManifestError;
    expect(error).toBeInstanceOf(ManifestError);
    expect(each.box.normalize(error.message).split("\n")).toEqual([
      "~/.config/bottle/bottles/default.yaml:2:17: env.DATABASE_URL: copies ${DB_URL} from the host environment, but DB_URL is not set",
      "~/.config/bottle/bottles/default.yaml:9:10: auth.token: copies ${MY_CLAUDE} from the host environment, but MY_CLAUDE is not set (or empty)",
      "~/.config/bottle/bottles/default.yaml:7:61: egress.routes (api.github.com).auth.token: copies ${GH_TOKEN} from the host environment, but GH_TOKEN is not set (or empty)",
    ]);
    expect(error.fix).toBe("export DB_URL, MY_CLAUDE, GH_TOKEN before running bottle");
    expect(error.message).not.toContain("Database password");
  });

  test("a question is an issue only without a terminal; with every variable set there is nothing to say", async () => {
    const hostEnv = { ...each.box.env, DB_URL: "postgres://db.test/x", GH_TOKEN: "gh-secret-value", MY_CLAUDE: "sk-ant-oat01-secret" };
    const launch = await planned(hostEnv);
    expect(() => checkLaunchValues(launch, hostEnv, true)).not.toThrow();
    const error = thrown(() => checkLaunchValues(launch, hostEnv, false)) as ManifestError;
    expect(error.issues.map((issue) => issue.path)).toEqual(["env.DB_PASSWORD"]);
    for (const value of ["postgres://db.test/x", "gh-secret-value", "sk-ant-oat01-secret"]) expect(error.message).not.toContain(value);
  });
});
