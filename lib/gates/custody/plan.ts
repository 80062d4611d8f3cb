import * as v from "valibot";

/**
 * Credential custody in the launch plan: where each credential comes from
 * and where the gate uses it — names only, never a value.
 */
export const CustodyPlanSchema = v.object({
  /** Claude Code's route; absent when no credential was found. */
  claude: v.optional(
    v.object({
      /** Where the credential comes from, for people: "$CLAUDE_CODE_OAUTH_TOKEN (host environment)". */
      source: v.string(),
      kind: v.picklist(["oauth", "api-key"]),
      /** The bottle's env var holding the placeholder (CLAUDE_CODE_OAUTH_TOKEN or ANTHROPIC_API_KEY). */
      env: v.string(),
      /** Where the gate sends Claude Code's requests. */
      upstream: v.string(),
      /** ANTHROPIC_BASE_URL inside the bottle. */
      baseUrl: v.string(),
    }),
  ),
  routes: v.array(
    v.object({
      host: v.string(),
      port: v.number(),
      header: v.string(),
      scheme: v.optional(v.string()),
      /** The credential's name in the gate (and in the audit log). */
      credential: v.string(),
      /** The bottle's env var holding the placeholder, when there is one. */
      env: v.optional(v.string()),
      paths: v.array(v.string()),
      methods: v.array(v.string()),
      source: v.string(),
    }),
  ),
  /** The gate's port for Claude Code's route. */
  port: v.number(),
});

export type CustodyPlan = v.InferOutput<typeof CustodyPlanSchema>;
