#!/bin/sh
# Starts the gate daemons. The launch streams their config on stdin while it
# starts the gate attached: its length in bytes on a line, then a tar of
# /etc/bottle (root-only files). Exactly that many bytes are read, so nothing
# waits for stdin to close; a gate started again already has its config. The
# git gate (only when the bottle has git remotes) starts git daemon in the
# background first, then the SSH gate (only when the bottle lists SSH hosts)
# its ssh-agent and forwarders; the egress gate exits the container if it
# dies, and its ready line comes last.
set -e
if [ ! -e /etc/bottle/egress.json ]; then
  if ! read -r size || [ -z "$size" ] || [ -n "$(printf '%s' "$size" | tr -d 0-9)" ]; then
    echo "gate: its config did not arrive on stdin" >&2
    exit 2
  fi
  head -c "$size" | tar -x -C / -f -
fi
exec </dev/null
if [ -x /etc/bottle/git/start ]; then /etc/bottle/git/start; fi
if [ -x /etc/bottle/ssh/start ]; then /etc/bottle/ssh/start; fi
exec node /opt/bottle/egress-gate.mjs /etc/bottle/egress.json
