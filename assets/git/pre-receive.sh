#!/bin/bash
# pre-receive of the git gate's mirror of @@REMOTE@@ (rendered by bottle at
# launch): scans the pushed commits with gitleaks, then forwards a clean push
# to the upstream; any finding or upstream refusal rejects the whole push.
set -uo pipefail
. /etc/bottle/git/lib.sh
load_remote @@REMOTE@@ || { echo "bottle git gate: remote @@REMOTE@@ is not configured" >&2; exit 1; }
pre_receive
