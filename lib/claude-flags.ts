/** Values Claude Code's own flags take, as agent files and plans name them. */

/** `claude --permission-mode`. */
export const PERMISSION_MODES = ["acceptEdits", "auto", "bypassPermissions", "manual", "dontAsk", "plan"] as const;
/** `claude --effort`. */
export const EFFORT_LEVELS = ["low", "medium", "high", "xhigh", "max"] as const;
