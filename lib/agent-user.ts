/**
 * The user every bottle runs as: named `agent` in the agent image
 * (assets/agent.Dockerfile) and in the passwd entry a launch writes when the
 * workspace owner's uid is not 1000 (passwdEntries), so its name is the same
 * whatever its uid. ssh in a bottle logs in under this name by default.
 */
export const AGENT_USER = "agent";
export const AGENT_HOME = `/home/${AGENT_USER}`;
