# The agent image: Claude Code's native binary on Debian, run as a non-root
# user. Rendered by lib/images.ts; BASE_IMAGE is pinned by digest unless
# BOTTLE_BASE_IMAGE overrides it. No `# syntax=` line: that frontend would
# have to be pulled, which air-gapped machines cannot do.
ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS claude
ARG CLAUDE_CODE_VERSION
ARG NPM_REGISTRY
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates curl >/dev/null \
 && rm -rf /var/lib/apt/lists/*
# Only the host's CA bundles here (TLS-inspecting proxies): a bottle's own
# ca_certs must not invalidate the download layer below.
COPY build-ca/ /usr/local/share/ca-certificates/bottle/
RUN update-ca-certificates >/dev/null 2>&1
RUN set -e; \
    case "$(dpkg --print-architecture)" in amd64) arch=x64 ;; arm64) arch=arm64 ;; *) echo "unsupported architecture" >&2; exit 1 ;; esac; \
    url="${NPM_REGISTRY%/}/@anthropic-ai/claude-code-linux-${arch}/-/claude-code-linux-${arch}-${CLAUDE_CODE_VERSION}.tgz"; \
    curl -fsSL --retry 3 "$url" -o /tmp/claude.tgz; \
    mkdir -p /opt/claude && tar -xzf /tmp/claude.tgz -C /opt/claude --strip-components=1 package/claude; \
    /opt/claude/claude --version >/dev/null

FROM ${BASE_IMAGE}
COPY install-packages.sh /usr/local/sbin/install-packages
RUN sh /usr/local/sbin/install-packages \
      ca-certificates git openssh-client rsync ripgrep curl less procps jq unzip socat tmux
COPY --from=claude /opt/claude/claude /usr/local/bin/claude
RUN useradd --create-home --uid 1000 --shell /bin/bash agent \
 && mkdir -p /workspace /run/bottle \
 && chown agent:agent /workspace /run/bottle \
 && chmod 0700 /run/bottle
COPY bottle-run.sh /usr/local/bin/bottle-run
COPY bottle-session.sh /usr/local/bin/bottle-session
COPY bottle-attach.sh /usr/local/bin/bottle-attach
COPY bottle-claude-sync.sh /usr/local/bin/bottle-claude-sync
COPY tmux.conf /etc/bottle-tmux.conf
RUN chmod 0755 /usr/local/bin/bottle-run /usr/local/bin/bottle-session /usr/local/bin/bottle-attach /usr/local/bin/bottle-claude-sync && chmod 0644 /etc/bottle-tmux.conf
# Last: the bottle's and the host's extra CAs, trusted by everything inside.
COPY ca-certs/ /usr/local/share/ca-certificates/bottle/
RUN update-ca-certificates >/dev/null 2>&1
ENV HOME=/home/agent \
    DISABLE_AUTOUPDATER=1 \
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 \
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    GIT_SSL_CAINFO=/etc/ssl/certs/ca-certificates.crt
USER agent
WORKDIR /workspace
CMD ["sleep", "infinity"]
