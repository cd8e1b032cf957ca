# Sourced by the integration scripts: paths and small helpers.
IT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO="$(cd "$IT_DIR/../.." && pwd)"
CACHE="${FJORD_CACHE:-${HOME:-/root}/.cache/fjord}"
GO="${GO:-/usr/local/go/bin/go}"
IT_VENV="$CACHE/it-venv"
IT_JAVA="$CACHE/it-java"
IT_JS="$CACHE/it-js"
IT_CLIENTS="kcat confluent-debian confluent-pypi kafka-python java franz-go kafkajs kafka-tools"
export GOMODCACHE="${GOMODCACHE:-$CACHE/go/mod}"
export GOCACHE="${GOCACHE:-$CACHE/go/build}"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
export GOTOOLCHAIN=local

it_log() { echo "[it] $*" >&2; }
it_die() { echo "[it] error: $*" >&2; exit 1; }

# stamp FILE... -> short hash of the files' contents (cache invalidation)
it_stamp() { cat "$@" | sha256sum | cut -c1-16; }

it_sudo() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs Debian packages that are missing (the way tools/install-deps.sh does).
it_apt() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  it_log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  it_sudo apt-get update -qq
  it_sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
