#!/bin/sh
# Installs Debian packages the way both bottle images want them, in one layer:
# no docs, man pages or translations (what -slim bases do), no apt lists left
# behind, and without the git programs nothing in a bottle or gate runs
# (scalar, imap-send, the dumb-HTTP and http-backend servers, git-shell,
# instaweb). Removed in the layer that installs them, their bytes never reach
# the image.
set -eu
printf '%s\n' 'path-exclude=/usr/share/doc/*' 'path-include=/usr/share/doc/*/copyright' \
  'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/info/*' \
  'path-exclude=/usr/share/locale/*' 'path-include=/usr/share/locale/locale.alias' \
  >/etc/dpkg/dpkg.cfg.d/bottle-slim
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
rm -f /usr/bin/scalar /usr/bin/git-shell
for program in scalar git-imap-send git-http-push git-http-fetch git-http-backend git-shell git-instaweb; do
  rm -f "/usr/lib/git-core/$program"
done
rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old /var/lib/dpkg/*-old
