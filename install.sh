#!/bin/sh
# Installs the bottle binary:
#
#   curl -fsSL https://github.com/bottle-sh/bottle/releases/latest/download/install.sh | sh
#
# Settings (environment):
#   BOTTLE_INSTALL       directory to install into (default: ~/.local/bin)
#   BOTTLE_VERSION       release to install, e.g. 1.2.3 (default: the latest)
#   BOTTLE_DOWNLOAD_URL  base URL holding SHA256SUMS and the tarballs
#                        (default: the GitHub release; overrides BOTTLE_VERSION)
#   BOTTLE_TARGET        force a build: linux-x64, linux-x64-baseline,
#                        linux-arm64, darwin-x64, darwin-arm64
#
# The download is checked against SHA256SUMS; a missing or different sum
# stops the install. Shell startup files are never edited.
#
# Everything below is a function; only the last line runs anything, so a
# download cut short runs nothing.

set -u

RELEASES_URL="https://github.com/bottle-sh/bottle/releases"
CPUINFO=/proc/cpuinfo

setup_colours() {
  if [ -t 2 ] && [ -z "${NO_COLOR:-}" ] && [ "${TERM:-}" != "dumb" ]; then
    BOLD=$(printf '\033[1m'); RED=$(printf '\033[31m'); GREEN=$(printf '\033[32m'); YELLOW=$(printf '\033[33m'); RESET=$(printf '\033[0m')
  else
    BOLD=""; RED=""; GREEN=""; YELLOW=""; RESET=""
  fi
}

info() { printf '%s\n' "$*" >&2; }
warn() { printf '%swarning:%s %s\n' "$YELLOW" "$RESET" "$*" >&2; }
success() { printf '%s%s%s\n' "$GREEN" "$*" "$RESET" >&2; }
die() {
  printf '%serror:%s %s\n' "$RED" "$RESET" "$1" >&2
  [ -n "${2:-}" ] && printf '  fix: %s\n' "$2" >&2
  exit 1
}

has() { command -v "$1" >/dev/null 2>&1; }

# ---------------------------------------------------------------- platform

detect_os() {
  case "$(uname -s)" in
    Linux) echo linux ;;
    Darwin) echo darwin ;;
    MINGW* | MSYS* | CYGWIN* | Windows_NT) die "bottle does not run on Windows" "use WSL, then run this installer inside it" ;;
    *) die "no bottle build for $(uname -s)" "bottle runs on Linux and macOS" ;;
  esac
}

detect_arch() {
  case "$(uname -m)" in
    x86_64 | amd64) echo x64 ;;
    aarch64 | arm64 | armv8 | armv8l) echo arm64 ;;
    *) die "no bottle build for $(uname -m) CPUs" "bottle builds exist for x86_64 and arm64" ;;
  esac
}

# An x64 shell under Rosetta on Apple silicon: the native build runs better.
is_rosetta() {
  [ "$(sysctl -n sysctl.proc_translated 2>/dev/null)" = "1" ]
}

# Bun's regular x64 build needs AVX2; older CPUs get the baseline build.
has_avx2() {
  [ -r "$CPUINFO" ] || return 0
  grep -Eq '^(flags|Features)[[:space:]]*:.*[[:space:]]avx2([[:space:]]|$)' "$CPUINFO"
}

# Prints e.g. linux-x64; keep the rules in step with lib/release/platform.ts.
detect_target() {
  if [ -n "${BOTTLE_TARGET:-}" ]; then
    case "$BOTTLE_TARGET" in
      linux-x64 | linux-x64-baseline | linux-arm64 | darwin-x64 | darwin-arm64) echo "$BOTTLE_TARGET"; return 0 ;;
      *) die "BOTTLE_TARGET=$BOTTLE_TARGET is not a bottle build" "use linux-x64, linux-x64-baseline, linux-arm64, darwin-x64 or darwin-arm64" ;;
    esac
  fi
  os=$(detect_os) || exit 1
  arch=$(detect_arch) || exit 1
  if [ "$os" = darwin ] && [ "$arch" = x64 ] && is_rosetta; then
    arch=arm64
  fi
  if [ "$os" = linux ] && [ "$arch" = x64 ] && ! has_avx2; then
    echo linux-x64-baseline
    return 0
  fi
  echo "$os-$arch"
}

# ---------------------------------------------------------------- download

base_url() {
  if [ -n "${BOTTLE_DOWNLOAD_URL:-}" ]; then
    printf '%s\n' "${BOTTLE_DOWNLOAD_URL%/}"
  elif [ -n "${BOTTLE_VERSION:-}" ]; then
    version=${BOTTLE_VERSION#v}
    case "$version" in
      *[!0-9A-Za-z.+-]* | "") die "BOTTLE_VERSION=$BOTTLE_VERSION is not a version" "set it to a release such as 1.2.3, or unset it" ;;
    esac
    printf '%s/download/v%s\n' "$RELEASES_URL" "$version"
  else
    printf '%s/latest/download\n' "$RELEASES_URL"
  fi
}

# download URL FILE
download() {
  if has curl; then
    curl --fail --silent --show-error --location --retry 3 --output "$2" "$1"
  elif has wget; then
    wget --quiet --tries=3 --output-document="$2" "$1"
  else
    die "neither curl nor wget is installed" "install one of them and run this again"
  fi
}

# ---------------------------------------------------------------- checksums

sha256_of() {
  if has sha256sum; then
    sha256sum "$1" | awk '{ print $1 }'
  elif has shasum; then
    shasum -a 256 "$1" | awk '{ print $1 }'
  else
    die "neither sha256sum nor shasum is installed, so the download cannot be verified" "install coreutils (sha256sum) or perl (shasum)"
  fi
}

# expected_sum SUMS_FILE NAME: the sum listed for NAME (text or binary mode).
# Fails when there is none, when it is malformed, or when two lines disagree.
expected_sum() {
  awk -v name="$2" '
    $2 == name || $2 == "*" name || $2 == "./" name {
      if ($1 !~ /^[0-9A-Fa-f]+$/ || length($1) != 64) { bad = 1; next }
      s = tolower($1)
      if (sum != "" && sum != s) bad = 1
      sum = s
    }
    END { if (bad || sum == "") exit 1; print sum }
  ' "$1"
}

verify() {
  expected=$(expected_sum "$1" "$2") || expected=""
  if [ -z "$expected" ]; then
    die "SHA256SUMS has no checksum for $2; refusing to install" "the release looks incomplete; try again later or pick another BOTTLE_VERSION"
  fi
  actual=$(sha256_of "$3") || exit 1
  actual=$(printf '%s' "$actual" | tr 'A-F' 'a-f')
  if [ "$actual" != "$expected" ]; then
    die "checksum mismatch for $2 (expected $expected, got $actual); refusing to install" "try again; if it keeps failing, the download is corrupted or tampered with"
  fi
}

# ---------------------------------------------------------------- install

# On macOS an unsigned binary will not run on Apple silicon: sign it ad hoc.
sign_if_needed() {
  [ "$(uname -s)" = Darwin ] || return 0
  if codesign -v "$1" >/dev/null 2>&1; then return 0; fi
  has codesign || die "the binary is unsigned and codesign is missing" "install the Xcode command line tools: xcode-select --install"
  codesign --force --sign - "$1" >/dev/null 2>&1 || die "could not sign $1 ad hoc" "run: codesign --force --sign - $1"
}

path_hint() {
  case ":${PATH:-}:" in
    *":$1:"*) return 0 ;;
  esac
  # The file names are shown, not expanded: keep the ~.
  # shellcheck disable=SC2088
  case "${SHELL:-}" in
    */zsh) profile="~/.zshrc"; line="export PATH=\"$1:\$PATH\"" ;;
    */fish) profile="~/.config/fish/config.fish"; line="fish_add_path \"$1\"" ;;
    */bash) profile="~/.bashrc"; line="export PATH=\"$1:\$PATH\"" ;;
    *) profile="your shell's startup file"; line="export PATH=\"$1:\$PATH\"" ;;
  esac
  info ""
  info "$1 is not on your PATH. Add this line to $profile:"
  info ""
  info "  ${BOLD}$line${RESET}"
  info ""
}

main() {
  setup_colours
  target=$(detect_target) || exit 1
  base=$(base_url) || exit 1
  if [ -n "${BOTTLE_INSTALL:-}" ]; then
    dest=$BOTTLE_INSTALL
  else
    [ -n "${HOME:-}" ] || die "HOME is not set" "set BOTTLE_INSTALL to the directory to install into"
    dest=$HOME/.local/bin
  fi
  name="bottle-$target.tar.gz"
  has tar || die "tar is not installed" "install tar and run this again"

  tmp=$(mktemp -d 2>/dev/null || mktemp -d -t bottle) || die "cannot create a temporary directory" "check TMPDIR"
  trap 'rm -rf "$tmp"' EXIT
  trap 'rm -rf "$tmp"; exit 130' INT TERM

  info "${BOLD}bottle${RESET}: installing $name from $base"
  download "$base/SHA256SUMS" "$tmp/SHA256SUMS" || die "cannot download $base/SHA256SUMS" "check the network; BOTTLE_DOWNLOAD_URL / BOTTLE_VERSION select the release"
  download "$base/$name" "$tmp/$name" || die "cannot download $base/$name" "check the network; BOTTLE_TARGET picks another build"
  verify "$tmp/SHA256SUMS" "$name" "$tmp/$name"
  info "checksum verified"

  mkdir "$tmp/x" || exit 1
  tar -xzf "$tmp/$name" -C "$tmp/x" bottle || die "$name does not hold a bottle binary" "report the broken release"
  if [ ! -f "$tmp/x/bottle" ] || [ -L "$tmp/x/bottle" ]; then
    die "$name does not hold a bottle binary" "report the broken release"
  fi

  mkdir -p "$dest" || die "cannot create $dest" "set BOTTLE_INSTALL to a directory you can write"
  [ -w "$dest" ] || die "$dest is not writable" "set BOTTLE_INSTALL to a directory you can write"
  staged="$dest/.bottle.install.$$"
  cp "$tmp/x/bottle" "$staged" || die "cannot write to $dest" "set BOTTLE_INSTALL to a directory you can write"
  chmod 755 "$staged" || { rm -f "$staged"; die "cannot make $staged executable"; }
  (sign_if_needed "$staged") || { rm -f "$staged"; exit 1; }
  mv -f "$staged" "$dest/bottle" || { rm -f "$staged"; die "cannot replace $dest/bottle" "set BOTTLE_INSTALL to a directory you can write"; }

  version=$("$dest/bottle" --version) || die "the installed $dest/bottle does not run" "try BOTTLE_TARGET=linux-x64-baseline on older x86-64 CPUs"
  success "installed $version to $dest/bottle"
  path_hint "$dest"
  info "Next: ${BOLD}bottle doctor${RESET}, then ${BOLD}bottle up${RESET}"
  printf '%s\n' "$version"
}

main "$@"
