#!/bin/sh
# A terminal joining the bottle's session (bottle up: start, bottle attach:
# join). $1 is the client's id: its tty is written down so that the host can
# detach it when its terminal goes away (docker keeps an exec running after
# its client is gone, and a tmux client whose terminal vanished would stay
# attached). Joining checks first, in this one exec, that there is something
# to join: 3 when the session's command has ended (its last screen is kept),
# 4 when there is no session.
id=$1
mode=$2
shift 2
socket=/run/bottle/session.sock
if [ "$mode" = join ]; then
  [ -e /run/bottle/session.exit ] && exit 3
  tmux -S "$socket" has-session -t claude 2>/dev/null || exit 4
fi
mkdir -p /run/bottle/clients
tty > "/run/bottle/clients/$id"
exec tmux -S "$socket" -f /etc/bottle-tmux.conf "$@"
