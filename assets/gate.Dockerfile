# The gate image: the egress gate (Node.js runs the bundled proxy, bottle-splice
# copies its bulk downloads), the relay of a forwarded port (port-relay.mjs,
# run in a container of its own) and the git gate (git daemon, openssh-client,
# gitleaks; its scripts and config are copied in at launch) on the same Debian
# base as the agent image. openssl makes the CA of credential routes
# (credential custody) at gate start.
ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS node
ARG NPM_REGISTRY
# tcc (a few hundred KB, where gcc is tens of MB) compiles bottle-splice.
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates curl binutils tcc libc6-dev >/dev/null \
 && rm -rf /var/lib/apt/lists/*
# Where it does not compile, the gate relays bulk downloads in Node.js (slower, same policy).
COPY bottle-splice.c /tmp/bottle-splice.c
RUN mkdir -p /opt/libexec \
 && { tcc -Wall -o /opt/libexec/bottle-splice /tmp/bottle-splice.c \
      || echo "warning: bottle-splice did not compile; the gate relays bulk downloads in Node.js" >&2; }
# Only the host's CA bundles here (TLS-inspecting proxies), as in the agent image.
COPY build-ca/ /usr/local/share/ca-certificates/bottle/
RUN update-ca-certificates >/dev/null 2>&1
# Node.js is the official build (the npm registry's node-linux-* packages),
# pinned by checksum and stripped of debug info: it starts in ~40 ms where
# Debian's build (no startup snapshot) takes ~200 ms — the gate's start is on
# every launch's critical path — and it is no larger than Debian's libnode
# with ICU.
RUN set -e; \
    version=22.23.3; \
    case "$(dpkg --print-architecture)" in \
      amd64) arch=x64; sha512=a879f3e6d16c1e88ff58cfae4443558d638d8b9855be6c2b82af00e15efa2a9b95340738fa3c0af31e20c1ba1b13d06d1cd83f00a476e7cdde628acb17f73b9e ;; \
      arm64) arch=arm64; sha512=9770c01d9adeca5a3ea7d4170edb0eae31b625726a5736179c01a621034e50d01170ca694ced9c99ec1540ffb7ead8c99d213e773a4c36d816f9cde8883bd7b4 ;; \
      *) echo "unsupported architecture" >&2; exit 1 ;; \
    esac; \
    curl -fsSL --retry 3 "${NPM_REGISTRY%/}/node-linux-${arch}/-/node-linux-${arch}-${version}.tgz" -o /tmp/node.tgz; \
    echo "${sha512}  /tmp/node.tgz" | sha512sum -c --quiet; \
    tar -xzf /tmp/node.tgz -C /tmp package/bin/node; \
    strip -o /opt/node /tmp/package/bin/node; \
    /opt/node --version >/dev/null

FROM ${BASE_IMAGE}
# Perl comes with git but nothing in the gate uses it (git daemon, fetch,
# push, hooks and gitleaks' `git log` are C or shell): dropped in the
# installing layer to stay small.
COPY install-packages.sh /usr/local/sbin/install-packages
RUN sh /usr/local/sbin/install-packages ca-certificates openssl git openssh-client gitleaks jq \
 && dpkg --remove --force-depends perl perl-modules-5.40 libperl5.40 liberror-perl git-man >/dev/null 2>&1
COPY --from=node /opt/node /usr/local/bin/node
COPY --from=node /opt/libexec/ /usr/local/libexec/
COPY ca-certs/ /usr/local/share/ca-certificates/bottle/
RUN update-ca-certificates >/dev/null 2>&1
COPY egress-gate.mjs port-relay.mjs /opt/bottle/
COPY gate-entrypoint.sh /usr/local/bin/gate-entrypoint
RUN chmod 0755 /usr/local/bin/gate-entrypoint && mkdir -p /etc/bottle /var/log/bottle && chmod 0700 /etc/bottle
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
ENTRYPOINT ["/usr/local/bin/gate-entrypoint"]
