#!/bin/bash
# Starts the SSH gate inside the gate container (run by gate-entrypoint
# before the egress gate): an ssh-agent holding only this bottle's keys, on
# a socket only root can reach, and the SSH gate daemon (Node.js) with one
# forwarder per listed host and the filtered agent port, on the bottle
# network's address only. Files (root-only, read from stdin before start):
#   /etc/bottle/ssh/ssh.json      hosts, ports, pinned host keys, log path
#   /etc/bottle/ssh/keys/N        the private key of host N (0600)
#   /etc/bottle/ssh/ssh-gate.mjs  the daemon
set -euo pipefail
dir=/etc/bottle/ssh
run=$(jq -r '.agentSocket | sub("/[^/]*$"; "")' "$dir/ssh.json")
sock=$(jq -r '.agentSocket' "$dir/ssh.json")
ready=$(jq -r '.readyFile' "$dir/ssh.json")
umask 077
mkdir -p "$run"
chmod 0700 "$run"
rm -f "$sock" "$ready"
# No PKCS#11 providers at all (the filter refuses smartcard requests anyway).
ssh-agent -a "$sock" -P /nonexistent >/dev/null
export SSH_AUTH_SOCK=$sock
hosts=()
while IFS= read -r host; do hosts+=("$host"); done < <(jq -r '.hosts[].host' "$dir/ssh.json")
for i in "${!hosts[@]}"; do
  if ! out=$(SSH_ASKPASS_REQUIRE=never ssh-add -q "$dir/keys/$i" </dev/null 2>&1); then
    echo "ssh gate: cannot load the key of ${hosts[$i]}: $(printf '%s' "$out" | head -n 1)" >&2
    exit 1
  fi
done
node "$dir/ssh-gate.mjs" "$dir/ssh.json" </dev/null &
pid=$!
for _ in $(seq 1 200); do
  if [ -s "$ready" ]; then
    echo "ssh gate ready on $(cat "$ready"):$(jq -r '[.hosts[].listenPort] | map(tostring) | join(",")' "$dir/ssh.json") (${hosts[*]})"
    exit 0
  fi
  kill -0 "$pid" 2>/dev/null || { echo "ssh gate: the daemon exited" >&2; exit 1; }
  sleep 0.05
done
echo "ssh gate: the daemon did not start listening" >&2
exit 1
