#!/bin/sh
# The command of a bottle's session (its tmux window): the bottle's Claude
# Code with the bottle's env (bottle-run), then how it ended, so that
# `bottle attach` and `bottle up` can say so after the session is gone.
rm -f /run/bottle/session.exit
bottle-run "$@"
code=$?
echo "$code" > /run/bottle/session.exit
exit "$code"
