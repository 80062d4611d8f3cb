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
cd /workspace 2>/dev/null || cd "$HOME"
exec "$@"
