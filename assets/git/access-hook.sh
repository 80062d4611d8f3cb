#!/bin/bash
# git daemon --access-hook of the git gate: $1 is the service (upload-pack
# for fetch/clone, receive-pack for push), $2 the mirror's path. Before
# serving either, the mirror is refreshed from the upstream; when that fails
# the request is refused with one line the client shows (fail closed).
set -uo pipefail
. /etc/bottle/git/lib.sh
name=$(basename "$2" .git)
if ! load_remote "$name" || [ "$REPO" != "$2" ]; then
  echo "bottle git gate: no remote named '$name' in this bottle"
  exit 1
fi
refresh_mirror "$1"
