# The git gate's shared functions, sourced (bash) by its start script, the
# git daemon access hook and every mirror's pre-receive hook. Everything
# here runs as root inside the gate; the bottle only speaks git protocol to
# git daemon. Config comes from files bottle renders at launch:
#   /etc/bottle/git/gate.env                 BOTTLE, GIT_PORT, GIT_LOG, GIT_LOG_MAX_BYTES, GIT_MIRRORS
#   /etc/bottle/git/remotes/NAME/remote.env  REMOTE, UPSTREAM
#   /etc/bottle/git/remotes/NAME/identity    the upstream's SSH key (0600)
#   /etc/bottle/git/remotes/NAME/known_hosts its pinned host key
GIT_GATE_DIR=/etc/bottle/git
. "$GIT_GATE_DIR/gate.env"

say() { printf '%s\n' "$*" >&2; }

# One JSON line in the audit log (`bottle logs NAME --gate git`).
# Arguments: key=value, or key=json:<JSON> for arrays and numbers.
log_event() {
  local kv line
  local -a args=()
  for kv in "$@"; do
    case "$kv" in
      *=json:*) args+=(--argjson "${kv%%=*}" "${kv#*=json:}") ;;
      *) args+=(--arg "${kv%%=*}" "${kv#*=}") ;;
    esac
  done
  line=$(jq -nc --arg time "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" --arg bottle "$BOTTLE" --arg remote "${REMOTE:-}" "${args[@]}" '$ARGS.named' 2>/dev/null) &&
    append_capped "$GIT_LOG" "${GIT_LOG_MAX_BYTES:-0}" "$line" || say "git gate: cannot write $GIT_LOG"
}

# Append a line to a log that the bottle must not be able to grow without
# bound (it lands in the host's state dir): past half of `max` bytes (0: no
# cap) the file becomes FILE.1, so the two never hold more than `max`. As in
# lib/gates/common/capped-log.ts; under a lock, since hooks run concurrently.
append_capped() {
  local file=$1 max=$2 line=$3
  (
    LC_ALL=C
    flock 8 || exit 1
    if [ "$max" -gt 0 ]; then
      # A line that could never fit (a push with very many findings) keeps its decision, not its lists.
      if [ $((${#line} + 1)) -gt $((max / 2)) ]; then
        line=$(printf '%s' "$line" | jq -c '{time, bottle, remote, event, service, decision, ref, commits, detail: "too long for the log cap: lists left out"} | with_entries(select(.value != null))') || exit 1
      fi
      size=$(stat -c %s "$file" 2>/dev/null) || size=0
      if [ "$size" -gt 0 ] && [ $((size + ${#line} + 1)) -gt $((max / 2)) ]; then mv -f "$file" "$file.1" || exit 1; fi
    fi
    printf '%s\n' "$line" >>"$file"
  ) 8>>"$GIT_GATE_DIR/log.lock"
}

# Select a remote by name: sets REMOTE, UPSTREAM, REMOTE_DIR, REPO and the
# ssh command git uses for the upstream (its key, its pinned host key only).
load_remote() {
  case "$1" in '' | *[!A-Za-z0-9._-]*) return 1 ;; esac
  REMOTE_DIR="$GIT_GATE_DIR/remotes/$1"
  [ -f "$REMOTE_DIR/remote.env" ] || return 1
  . "$REMOTE_DIR/remote.env"
  REPO="$GIT_MIRRORS/$REMOTE.git"
  export GIT_SSH_COMMAND="ssh -F /dev/null -i $REMOTE_DIR/identity -o IdentitiesOnly=yes -o IdentityAgent=none \
-o UserKnownHostsFile=$REMOTE_DIR/known_hosts -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes \
-o UpdateHostKeys=no -o CheckHostIP=no -o BatchMode=yes -o ConnectTimeout=15 -o ServerAliveInterval=15 -o ServerAliveCountMax=4"
}

# Why git failed talking to the upstream, in one line: ssh's own error or
# the upstream's refusal rather than git's generic closing words.
failure_reason() {
  local text line
  text=$(tr -d '\r' | tr -cd '[:print:]\n')
  line=$(printf '%s\n' "$text" | grep -m 1 -E 'Host key verification failed|HOST IDENTIFICATION HAS CHANGED|host key is known|Permission denied|^ssh: |Connection (refused|timed out|closed|reset)|Could not resolve') ||
    line=$(printf '%s\n' "$text" | grep -m 1 -E '^ ! ') ||
    line=$(printf '%s\n' "$text" | grep -E '^(fatal|error): ' | grep -v -m 1 -E 'Could not read from remote repository|failed to push some refs') ||
    line=$(printf '%s\n' "$text" | grep -v -m 1 '^[[:space:]]*$') || true
  printf '%s' "$line" | sed 's/^[[:space:]]*//' | cut -c1-300
}

# Access hook, before every fetch and push: bring the mirror up to date with
# the upstream. Fails closed: when the upstream cannot be reached, the
# request is refused (the single stdout line is what the client sees).
refresh_mirror() {
  local service=$1 out reason head
  exec 9>>"$REPO/bottle-refresh.lock"
  flock 9
  if ! out=$(git --git-dir="$REPO" fetch --quiet --prune "$UPSTREAM" '+refs/heads/*:refs/heads/*' '+refs/tags/*:refs/tags/*' 2>&1); then
    reason=$(printf '%s\n' "$out" | failure_reason)
    log_event event=fetch service="$service" decision=error detail="$reason"
    echo "bottle git gate: cannot fetch '$REMOTE' from its upstream $UPSTREAM (${reason:-no reason given}); refusing to serve possibly stale refs - try again when the upstream is reachable"
    return 1
  fi
  if [ ! -e "$REPO/bottle-head-set" ]; then
    # The upstream's default branch, so a clone checks out the same branch.
    head=$(git --git-dir="$REPO" ls-remote --symref "$UPSTREAM" HEAD 2>/dev/null | sed -n 's/^ref: \(refs\/heads\/[^[:space:]]*\)[[:space:]]*HEAD$/\1/p' | head -n 1)
    if [ -n "$head" ]; then
      git --git-dir="$REPO" symbolic-ref HEAD "$head" && : >"$REPO/bottle-head-set"
    fi
  fi
  log_event event=fetch service="$service" decision=allow
}

# How git log prints the commits gitleaks scans: every blob's lines as text.
# gitleaks 8.16 skips each file git prints as "Binary files ... differ",
# which git's diff.c does for a NUL byte, a blob over core.bigFileThreshold,
# or a `binary` / `-diff` / `diff.<driver>.binary` attribute - unless --text,
# which overrides all of them. --no-textconv: git log runs textconv filters
# by default, and a filter prints its own view of a blob, not its bytes;
# --no-ext-diff: no external diff driver either. Attributes can then change
# nothing in what is printed but hunk headers.
SCAN_DIFF_OPTS="--text --no-textconv --no-ext-diff"

# gitleaks with the gate's rules over the commits selected by LOG_OPTS (git
# log options, single-space separated: gitleaks splits them on spaces) in
# the repository SOURCE. Always its git mode; see scan_files for why never
# --no-git. Returns 0 clean, 1 findings, 2 scan failed (gitleaks 8.16 exits 0
# with "partial scan" when git fails: fail closed).
run_gitleaks() {
  local report=$1 log=$2 source=$3 log_opts=$4 rc
  (cd "$WORK" && env -u GITLEAKS_CONFIG PATH="$GIT_GATE_DIR/bin:/usr/bin:/bin" \
    gitleaks detect --no-banner --redact --config "$GIT_GATE_DIR/gitleaks.toml" \
    --report-format json --report-path "$report" --exit-code 3 \
    --source "$source" --log-opts="$SCAN_DIFF_OPTS $log_opts") >"$log" 2>&1
  rc=$?
  if [ "$rc" -eq 3 ] && [ "$(jq 'length' "$report" 2>/dev/null)" -gt 0 ] 2>/dev/null; then return 1; fi
  if [ "$rc" -ne 0 ] || [ ! -s "$report" ]; then return 2; fi
  if sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -Eq ' (ERR|FTL) |partial scan|error'; then return 2; fi
  return 0
}

# Scan the files of DIR (findings name each file by its path in DIR, with
# line numbers). They are committed as they are into a throwaway repository
# inside DIR, whose one commit gitleaks scans in git mode. Its --no-git mode
# would skip every file whose first bytes look like a binary format (8.16
# matches magic numbers: "MZ", "%PDF", "{\rtf", "ustar" at byte 257, ...),
# and a commit message may start with any of them. Returns like run_gitleaks.
scan_files() {
  local dir=$1 report=$2 log=$3
  (
    # Away from the pushed repository and its quarantine: no GIT_DIR,
    # GIT_OBJECT_DIRECTORY, ... from receive-pack's environment.
    for variable in $(compgen -e GIT_); do unset "$variable"; done
    local tree commit
    {
      git -C "$dir" -c init.defaultBranch=main init --quiet && git -C "$dir" add --all &&
        tree=$(git -C "$dir" write-tree) &&
        commit=$(GIT_AUTHOR_NAME=bottle GIT_AUTHOR_EMAIL=gate@bottle.invalid GIT_COMMITTER_NAME=bottle GIT_COMMITTER_EMAIL=gate@bottle.invalid \
          git -C "$dir" commit-tree -m "files to scan" "$tree")
    } >"$log" 2>&1 || exit 2
    run_gitleaks "$report" "$log" "$dir" "$commit"
  )
}

# Scan what one ref update brings: the commits not on any ref of the mirror
# (which equals the upstream after the refresh), i.e. `<new> --not --all`
# for a new ref and `<old>..<new>` minus what the upstream already has for an
# update, and the message of a new tag object.
scan_update() {
  local old=$1 new=$2 ref=$3 n=$4 tag=""
  local -a range
  if [[ $old =~ ^0+$ ]]; then range=("$new" --not --all); else range=("$new" --not "$old" --all); fi
  [ "$(git cat-file -t "$new")" = tag ] && tag=$new
  scan_range "$ref" "$n" "$tag" "${range[@]}"
}

# Scan the commits that the rev-list arguments after REF N TAG select (in
# $REPO, GIT_DIR set): content (diffs, merges as remerge diffs so only what
# the merge itself adds counts) and commit messages, and TAG's message when
# it names a tag object. Appends findings, named by REF, to
# $WORK/findings.json. Returns like run_gitleaks. The git gate scans pushes
# with it; `bottle merge` scans a bottle's branch with it (scan-merge.sh).
scan_range() {
  local ref=$1 n=$2 tag=$3 count status=0 marker
  shift 3
  local -a range=("$@")
  count=$(git rev-list --count "${range[@]}" 2>/dev/null) || return 2
  SCANNED=$count
  local content="$WORK/content-$n.json" messages="$WORK/messages-$n"
  echo '[]' >"$content"
  if [ "$count" -gt 0 ]; then
    run_gitleaks "$content" "$WORK/content-$n.log" "$REPO" "--diff-merges=remerge --diff-filter=ACDMRTUXB ${range[*]}"
    status=$?
    [ "$status" -eq 2 ] && return 2
  fi
  # Messages: one file per commit (named by its id) and per new tag object.
  mkdir "$messages"
  marker="bottle-$(cat /proc/sys/kernel/random/uuid)"
  if [ "$count" -gt 0 ]; then
    git log --format="$marker %H%n%B" "${range[@]}" | sed 's/gitleaks:allow/gitleaks_allow/gI' |
      awk -v m="$marker" -v d="$messages" '$1 == m && NF == 2 && $2 ~ /^[0-9a-f]+$/ { if (f) close(f); f = d "/" $2 ".txt"; next } f { print > f }' ||
      return 2
  fi
  if [ -n "$tag" ]; then
    git cat-file tag "$tag" | sed '1,/^$/d' | sed 's/gitleaks:allow/gitleaks_allow/gI' >"$messages/$tag.txt" || return 2
  fi
  local found="$WORK/messages-$n.json"
  echo '[]' >"$found"
  if [ -n "$(ls -A "$messages")" ]; then
    scan_files "$messages" "$found" "$WORK/messages-$n.log"
    case $? in 1) status=1 ;; 2) return 2 ;; esac
  fi
  jq -s --arg ref "$ref" '
      (.[0] | map({file: .File, line: .StartLine, rule: .RuleID, description: .Description, commit: .Commit, ref: $ref}))
    + (.[1] | map({file: "(message)", line: .StartLine, rule: .RuleID, description: .Description,
                   commit: (.File | split("/") | last | rtrimstr(".txt")), ref: $ref}))' \
    "$content" "$found" >"$WORK/findings-$n.json" || return 2
  jq -s 'add' "$WORK/findings.json" "$WORK/findings-$n.json" >"$WORK/findings.tmp" && mv "$WORK/findings.tmp" "$WORK/findings.json"
  return "$status"
}

# pre-receive: scan every pushed ref, then forward the whole push upstream
# over SSH while the new objects are still in the quarantine. Only when the
# upstream accepted does receive-pack update the mirror.
pre_receive() {
  local old new ref current n=0 failed=0 status
  local -a olds=() news=() refs=() leases=() specs=()
  export GIT_DIR="$REPO"
  WORK=$(mktemp -d /tmp/bottle-push.XXXXXX)
  trap 'rm -rf "$WORK"' EXIT
  echo '[]' >"$WORK/findings.json"
  while read -r old new ref; do
    olds+=("$old") news+=("$new") refs+=("$ref")
  done
  for n in "${!refs[@]}"; do
    old=${olds[$n]} new=${news[$n]} ref=${refs[$n]}
    case "$ref" in
      refs/heads/* | refs/tags/*) ;;
      *)
        say "bottle git gate: refusing $ref - only branches and tags go through the git gate"
        log_event event=push ref="$ref" decision=deny detail="not a branch or tag"
        failed=1
        continue
        ;;
    esac
    # The client's old value must be the mirror's (that is, the upstream's):
    # it decides what counts as already upstream and is the forward's lease.
    current=$(git rev-parse -q --verify "$ref" 2>/dev/null) || current=$(printf '%0*d' "${#old}" 0)
    if [ "$current" != "$old" ]; then
      say "bottle git gate: refusing $ref - it changed upstream meanwhile; fetch and try again"
      log_event event=push ref="$ref" old="$old" new="$new" decision=deny detail="stale old value"
      failed=1
      continue
    fi
    if [[ $new =~ ^0+$ ]]; then
      log_event event=scan ref="$ref" old="$old" new="$new" commits=json:0 decision=allow detail="deletion: nothing to scan"
      continue
    fi
    if [ "$(git cat-file -t "$new^{}" 2>/dev/null)" != commit ]; then
      say "bottle git gate: refusing $ref - it must point to a commit (or a tag of one)"
      log_event event=push ref="$ref" new="$new" decision=deny detail="not a commit"
      failed=1
      continue
    fi
    SCANNED=0
    scan_update "$old" "$new" "$ref" "$n"
    status=$?
    if [ "$status" -eq 2 ]; then
      say "bottle git gate: the secret scan of $ref failed; the push is refused (nothing was sent upstream)"
      sed 's/\x1b\[[0-9;]*m//g' "$WORK"/*-"$n".log 2>/dev/null | grep -E 'ERR|FTL|error' | head -n 5 | sed 's/^/  /' >&2
      log_event event=scan ref="$ref" old="$old" new="$new" commits=json:"${SCANNED:-0}" decision=error detail="scan failed"
      failed=1
      continue
    fi
    log_event event=scan ref="$ref" old="$old" new="$new" commits=json:"$SCANNED" decision="$([ "$status" -eq 0 ] && echo allow || echo deny)" \
      findings=json:"$(jq -c '[.[] | del(.ref, .description)]' "$WORK/findings-$n.json")"
  done
  if [ "$(jq 'length' "$WORK/findings.json")" -gt 0 ]; then
    local total
    total=$(jq 'unique_by([.file, .line, .rule, .commit]) | length' "$WORK/findings.json")
    say ""
    say "bottle git gate: push rejected - gitleaks found $total secret(s) in the pushed commits:"
    jq -r 'unique_by([.file, .line, .rule, .commit]) | .[] | "  \(.file):\(.line)  rule \(.rule) (\(.description))  commit \(.commit[0:12])  [\(.ref)]"' "$WORK/findings.json" >&2
    say "Nothing was sent upstream. Remove the secret from those commits (e.g. git rebase -i, git commit --amend),"
    say "then push again; if it is a real credential, treat it as exposed. Values are redacted here and in the log;"
    say "gitleaks:allow comments do not apply in the git gate."
    say ""
    failed=1
  fi
  if [ "$failed" -ne 0 ]; then
    log_event event=push decision=deny refs=json:"$(printf '%s\n' "${refs[@]}" | jq -Rsc 'split("\n") | map(select(. != ""))')"
    return 1
  fi
  for n in "${!refs[@]}"; do
    old=${olds[$n]} new=${news[$n]} ref=${refs[$n]}
    if [[ $old =~ ^0+$ ]]; then leases+=("--force-with-lease=$ref:"); else leases+=("--force-with-lease=$ref:$old"); fi
    if [[ $new =~ ^0+$ ]]; then specs+=(":$ref"); else specs+=("$new:$ref"); fi
  done
  # No mirror refresh while the upstream moves.
  exec 9>>"$REPO/bottle-refresh.lock"
  flock 9
  say "bottle git gate: no secrets found; forwarding to $UPSTREAM"
  local out rc
  out=$(git push --no-verify "${leases[@]}" "$UPSTREAM" "${specs[@]}" 2>&1)
  rc=$?
  printf '%s\n' "$out" | sed 's/^/upstream: /' >&2
  if [ "$rc" -ne 0 ]; then
    say "bottle git gate: the upstream refused the push (see above); nothing changed in the gate's mirror"
    log_event event=forward decision=error refs=json:"$(printf '%s\n' "${refs[@]}" | jq -Rsc 'split("\n") | map(select(. != ""))')" \
      detail="$(printf '%s\n' "$out" | failure_reason)"
    return 1
  fi
  log_event event=forward decision=allow refs=json:"$(printf '%s\n' "${refs[@]}" | jq -Rsc 'split("\n") | map(select(. != ""))')"
  return 0
}
