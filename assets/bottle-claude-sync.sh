#!/bin/sh
# The user's Claude setup into the bottle's kept ~/.claude, once per bottle
# (bottle-run calls it). Provisioning staged this launch's copies in
# ~/.bottle/claude; the kept home may hold an earlier launch's, and whatever
# Claude Code and the agent wrote there, which stays.
# - commands/, agents/, output-styles/: this launch's files are copied in; the
#   ones an earlier launch copied and the host no longer has are removed (the
#   list of what bottle copied is ~/.claude/.bottle-managed).
# - memory: ~/.claude/CLAUDE.md (the bottle's own, which Claude Code may edit)
#   starts by importing the user's, so edits made in the bottle are kept and
#   the user's memory is fresh each launch.
stage="$HOME/.bottle/claude"
home="$HOME/.claude"
list="$home/.bottle-managed"
mkdir -p "$home"
# Nothing staged yet (provisioning has not run): try again next time.
cd "$stage" 2>/dev/null || exit 1
now=$(mktemp)
find commands agents output-styles -type f 2>/dev/null | LC_ALL=C sort > "$now"
if [ -f "$list" ]; then
  LC_ALL=C sort "$list" | LC_ALL=C comm -23 - "$now" | while IFS= read -r file; do rm -f "$home/$file"; done
fi
while IFS= read -r file; do
  mkdir -p "$home/$(dirname "$file")" && cp -f "$file" "$home/$file"
done < "$now"
mv -f "$now" "$list"
if [ -f CLAUDE.md ]; then
  line="@$stage/CLAUDE.md"
  if ! head -n 1 "$home/CLAUDE.md" 2>/dev/null | grep -qxF "$line"; then
    { printf '%s\n\n' "$line"; cat "$home/CLAUDE.md" 2>/dev/null || true; } > "$home/.CLAUDE.md.bottle" && mv -f "$home/.CLAUDE.md.bottle" "$home/CLAUDE.md"
  fi
fi
