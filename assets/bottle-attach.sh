#!/bin/sh
# A terminal joining the bottle's session (bottle up, bottle attach). $1 is
# the client's id: its tty is written down so that the host can detach it
# when its terminal goes away (docker keeps an exec running after its client
# is gone, and a tmux client whose terminal vanished would stay attached).
id=$1
shift
mkdir -p /run/bottle/clients
tty > "/run/bottle/clients/$id"
exec tmux -S /run/bottle/session.sock -f /etc/bottle-tmux.conf "$@"
