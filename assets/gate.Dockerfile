# The gate image: the egress gate (Node.js runs the bundled proxy) and the
# git gate (git daemon, openssh-client, gitleaks; its scripts and config are
# copied in at launch) on the same Debian base as the agent image. openssl
# makes the CA of credential routes (credential custody) at gate start.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
# Perl comes with git but nothing in the gate uses it (git daemon, fetch,
# push, hooks and gitleaks' `git log` are C or shell), nor corepack or Node's
# type definitions: dropped in the installing layer to stay small.
COPY install-packages.sh /usr/local/sbin/install-packages
RUN sh /usr/local/sbin/install-packages ca-certificates nodejs openssl git openssh-client gitleaks jq \
 && dpkg --remove --force-depends perl perl-modules-5.40 libperl5.40 liberror-perl git-man node-corepack >/dev/null 2>&1 \
 && rm -rf /usr/share/nodejs/@types
COPY ca-certs/ /usr/local/share/ca-certificates/bottle/
RUN update-ca-certificates >/dev/null 2>&1
COPY egress-gate.mjs /opt/bottle/egress-gate.mjs
COPY gate-entrypoint.sh /usr/local/bin/gate-entrypoint
RUN chmod 0755 /usr/local/bin/gate-entrypoint && mkdir -p /etc/bottle /var/log/bottle && chmod 0700 /etc/bottle
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
ENTRYPOINT ["/usr/local/bin/gate-entrypoint"]
