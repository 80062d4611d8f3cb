# The gate image: the egress gate (Node.js runs the bundled proxy) and the
# git gate (git daemon, openssh-client, gitleaks; its scripts and config are
# copied in at launch) on the same Debian base as the agent image. openssl
# makes the CA of credential routes (credential custody) at gate start.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
# Keep docs, man pages and translations out of the image (what -slim bases do).
RUN printf '%s\n' 'path-exclude=/usr/share/doc/*' 'path-include=/usr/share/doc/*/copyright' \
      'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/info/*' \
      'path-exclude=/usr/share/locale/*' 'path-include=/usr/share/locale/locale.alias' \
      > /etc/dpkg/dpkg.cfg.d/bottle-slim
# Perl comes with git but nothing in the gate uses it (git daemon, fetch,
# push, hooks and gitleaks' `git log` are C or shell): drop it to stay small.
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      ca-certificates nodejs openssl git openssh-client gitleaks jq \
      >/dev/null \
 && dpkg --remove --force-depends perl perl-modules-5.40 libperl5.40 liberror-perl git-man >/dev/null 2>&1 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old /var/lib/dpkg/*-old
COPY ca-certs/ /usr/local/share/ca-certificates/bottle/
RUN update-ca-certificates >/dev/null 2>&1
COPY egress-gate.mjs /opt/bottle/egress-gate.mjs
COPY gate-entrypoint.sh /usr/local/bin/gate-entrypoint
RUN chmod 0755 /usr/local/bin/gate-entrypoint && mkdir -p /etc/bottle /var/log/bottle && chmod 0700 /etc/bottle
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
ENTRYPOINT ["/usr/local/bin/gate-entrypoint"]
