import { describe, expect, test } from "bun:test";
import { claudeCredentialCheck } from "../../lib/doctor-credential.ts";
import { sandboxEachTest } from "./manifest/helpers.ts";

/** `bottle doctor`'s Claude Code credential row: where it comes from, never the value. */

const each = sandboxEachTest();
const TOKEN = "sk-ant-oat01-doctor-S3CRET";

describe("claudeCredentialCheck", () => {
  test("$CLAUDE_CODE_OAUTH_TOKEN or $ANTHROPIC_API_KEY set: ok, naming the variable, never the value", async () => {
    for (const name of ["CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_API_KEY"]) {
      const check = await claudeCredentialCheck({ ...each.box.env, [name]: TOKEN }, each.box.project);
      expect(check.status).toBe("ok");
      expect(check.detail).toContain(`$${name}`);
      expect(JSON.stringify(check)).not.toContain("S3CRET");
    }
  });

  test("none: a warning with the fix", async () => {
    const check = await claudeCredentialCheck(each.box.env, each.box.project);
    expect(check).toEqual({
      name: "Claude Code credential",
      status: "warn",
      detail: "none: CLAUDE_CODE_OAUTH_TOKEN and ANTHROPIC_API_KEY are not set, and bottle default has no auth.token",
      fix: "run `claude setup-token`, then export CLAUDE_CODE_OAUTH_TOKEN=<the token> (or export ANTHROPIC_API_KEY)",
    });
  });

  test("the default bottle's auth.token: ok when its variable is set, a warning naming it when not (it comes first, as at launch)", async () => {
    each.box.bottle("default", "auth:\n  token: ${MY_CLAUDE}\n");
    const set = await claudeCredentialCheck({ ...each.box.env, MY_CLAUDE: TOKEN }, each.box.project);
    expect(set.status).toBe("ok");
    expect(set.detail).toBe("OAuth token from auth.token (${MY_CLAUDE}) of bottle default (held by the gate; never shown)");
    const unset = await claudeCredentialCheck({ ...each.box.env, CLAUDE_CODE_OAUTH_TOKEN: TOKEN }, each.box.project);
    expect(unset.status).toBe("warn");
    expect(unset.detail).toBe("OAuth token from auth.token (${MY_CLAUDE}) of bottle default, but MY_CLAUDE is not set (or empty)");
    expect(unset.fix).toBe("export MY_CLAUDE=<the token from `claude setup-token`>");
    expect(JSON.stringify([set, unset])).not.toContain("S3CRET");
  });

  test("the bottle of the project's default agent; a broken one is said, not thrown", async () => {
    each.box.bottle("work", "auth:\n  token: ${WORK_TOKEN}\n");
    each.box.agent("default", "---\nbottle: work\n---\n", "project");
    expect((await claudeCredentialCheck({ ...each.box.env, WORK_TOKEN: TOKEN }, each.box.project)).detail).toContain("of bottle work");
    each.box.bottle("work", "auth:\n  tokn: x\n");
    const broken = await claudeCredentialCheck(each.box.env, each.box.project);
    expect(broken.status).toBe("warn");
    expect(broken.detail).toContain("cannot read the bottle `bottle up` would use");
  });
});
