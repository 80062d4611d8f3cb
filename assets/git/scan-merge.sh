#!/bin/bash
# `bottle merge` and `bottle apply`: the git gate's secret scan (lib.sh's
# scan_range, the same rules and the same handling of binary files, textconv
# and gitleaks:allow) over the commits a bottle's branch brings: TIP, not
# reachable from any of the other arguments. The host runs it in a throwaway
# gate container with no network, its repository's git dir mounted read-only
# at /repo.git (on a remote engine, its objects as /tmp/objects.bundle). Prints the findings as JSON on stdout; exits 0 when clean,
# 1 with findings, 2 when the scan failed (fail closed).
set -u
. /etc/bottle/git/lib.sh
tip=$1
shift
export REPO=/repo.git GIT_DIR=/repo.git
# The repository belongs to the user, not to this container's root.
export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=safe.directory GIT_CONFIG_VALUE_0='*'
# On a remote engine the repository came as a bundle of its objects (nothing of the host can be mounted there).
if [ -f /tmp/objects.bundle ]; then
  export REPO=/tmp/repo.git GIT_DIR=/tmp/repo.git
  # Its refs too: TIP and the others may be names (HEAD, refs/heads/bottle/…).
  unpack() {
    git init -q --bare "$REPO" && git bundle unbundle /tmp/objects.bundle >/dev/null || return 1
    git bundle list-heads /tmp/objects.bundle | while read -r sha ref; do git update-ref --no-deref "$ref" "$sha" || exit 1; done
  }
  unpack && rm -f /tmp/objects.bundle || { say "the secret scan failed: the repository's bundle did not unpack"; exit 2; }
fi
WORK=$(mktemp -d)
echo '[]' >"$WORK/findings.json"
exclude=()
for commit in "$@"; do exclude+=("^$commit"); done
scan_range "bottle branch" 0 "" "$tip" "${exclude[@]}"
status=$?
[ "$status" -eq 2 ] && { say "the secret scan failed: $(tail -n 3 "$WORK"/*.log 2>/dev/null | tr '\n' ' ')"; exit 2; }
jq -c 'unique_by([.file, .line, .rule, .commit])' "$WORK/findings.json"
exit "$status"
