#!/bin/bash
# Starts the git gate inside the gate container (run by gate-entrypoint
# before the egress gate): one bare mirror per remote, served by git daemon
# on the bottle's internal network only (the address of the alias `gate`).
# git daemon runs as root in the gate: the bottle only speaks git protocol to
# it, and the hooks need the upstream keys, which only root can read.
set -euo pipefail
. /etc/bottle/git/lib.sh
mkdir -p "$GIT_MIRRORS"
names=()
for dir in "$GIT_GATE_DIR"/remotes/*/; do
  load_remote "$(basename "$dir")"
  git init --quiet --bare --initial-branch=main "$REPO"
  git --git-dir="$REPO" config core.hooksPath "$REMOTE_DIR/hooks"
  git --git-dir="$REPO" config receive.fsckObjects true
  git --git-dir="$REPO" config gc.auto 0
  : >"$REPO/git-daemon-export-ok"
  names+=("$REMOTE")
done
addr=""
for _ in $(seq 1 50); do
  addr=$(getent ahostsv4 gate 2>/dev/null | awk 'NR == 1 { print $1 }') || true
  [ -n "$addr" ] && break
  sleep 0.1
done
if [ -z "$addr" ]; then
  echo "git gate: cannot find this gate's address on the bottle network (alias gate)" >&2
  exit 1
fi
git daemon --reuseaddr --listen="$addr" --port="$GIT_PORT" --base-path="$GIT_MIRRORS" \
  --enable=receive-pack --informative-errors --access-hook="$GIT_GATE_DIR/access-hook" \
  --max-connections=32 "$GIT_MIRRORS" </dev/null &
pid=$!
port_hex=$(printf '%04X' "$GIT_PORT")
for _ in $(seq 1 100); do
  if grep -Eq "^ *[0-9]+: [0-9A-F]+:$port_hex [0-9A-F]+:0000 0A " /proc/net/tcp; then
    echo "git gate ready on $addr:$GIT_PORT (${names[*]})"
    exit 0
  fi
  kill -0 "$pid" 2>/dev/null || { echo "git gate: git daemon exited" >&2; exit 1; }
  sleep 0.05
done
echo "git gate: git daemon did not start listening on $addr:$GIT_PORT" >&2
exit 1
