#!/bin/sh
# Runs a command in the bottle with the bottle's env. The values live in a
# file only the agent user can read, so they never appear on a command line
# or in `docker inspect`.
set -e
if [ -r /run/bottle/env ]; then
  set -a
  . /run/bottle/env
  set +a
fi
# ~/.claude is a kept home; the skills are this launch's list (provisioning's ~/.bottle/skills).
if [ -d "$HOME/.bottle/skills" ] && [ "$(readlink "$HOME/.claude/skills" 2>/dev/null)" != "$HOME/.bottle/skills" ]; then
  rm -rf "$HOME/.claude/skills" 2>/dev/null
  ln -sfn "$HOME/.bottle/skills" "$HOME/.claude/skills" 2>/dev/null
fi
# The user's Claude setup (bottle-claude-sync), once per bottle: /run/bottle is the bottle's own, not kept.
if [ ! -e /run/bottle/claude-synced ]; then
  bottle-claude-sync 2>/dev/null && : > /run/bottle/claude-synced 2>/dev/null || true
fi
cd /workspace 2>/dev/null || cd "$HOME"
exec "$@"
