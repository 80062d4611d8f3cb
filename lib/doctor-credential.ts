import type { Check } from "./doctor-check.ts";
import { errorMessage } from "./errors.ts";
import { findClaudeCredential } from "./gates/custody/index.ts";
import { resolveAgentAndBottle } from "./manifest/index.ts";

/**
 * `bottle doctor`'s row for Claude Code's credential: the one `bottle up`
 * would take here (the bottle's auth.token, its env, then
 * $CLAUDE_CODE_OAUTH_TOKEN / $ANTHROPIC_API_KEY), and whether it has a value.
 * It names where the credential comes from, never the value.
 */

type Env = Record<string, string | undefined>;

const NAME = "Claude Code credential";
const FIX = "run `claude setup-token`, then export CLAUDE_CODE_OAUTH_TOKEN=<the token> (or export ANTHROPIC_API_KEY)";

export async function claudeCredentialCheck(env: Env, projectDir: string): Promise<Check> {
  let resolved: Awaited<ReturnType<typeof resolveAgentAndBottle>>;
  try {
    resolved = await resolveAgentAndBottle({ projectDir, env });
  } catch (error) {
    return { name: NAME, status: "warn", detail: `cannot read the bottle \`bottle up\` would use: ${errorMessage(error).split("\n")[0]}`, fix: "run `bottle info` and fix what it says" };
  }
  const bottle = resolved.bottle.name;
  const credential = findClaudeCredential(resolved.bottle, env);
  if (!credential)
    return {
      name: NAME,
      status: "warn",
      detail: `none: CLAUDE_CODE_OAUTH_TOKEN and ANTHROPIC_API_KEY are not set, and bottle ${bottle} has no auth.token`,
      fix: FIX,
    };
  const what = `${credential.kind === "oauth" ? "OAuth token" : "API key"} from ${credential.source}`;
  const from = credential.path.startsWith("auth.") || credential.path.startsWith("env.") ? ` of bottle ${bottle}` : "";
  const source = credential.entry.source;
  if (source.kind === "ask") return { name: NAME, status: "info", detail: `${what}${from}, asked at launch` };
  if (source.kind === "host" && !env[source.variable])
    return { name: NAME, status: "warn", detail: `${what}${from}, but ${source.variable} is not set (or empty)`, fix: `export ${source.variable}=<the token from \`claude setup-token\`>` };
  return { name: NAME, status: "ok", detail: `${what}${from} (held by the gate; never shown)` };
}
