#!/bin/sh
# Starts the gate daemons. The egress gate's config was copied in with
# `docker cp` before start; it exits the container if it dies.
set -e
exec node /opt/bottle/egress-gate.mjs /etc/bottle/egress.json
