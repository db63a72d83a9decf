#!/usr/bin/env bash
# Installs everything `make demo` and `make test` need on a fresh Debian 12
# machine, and nothing when it is all present already (a no-op run takes
# well under a second, so every make target can call it).
#
#   * Debian packages from APT_PACKAGES (one list; later issues append to it)
#   * a project virtualenv in var/venv with the Python test drivers
#     (Debian 12's pip refuses to install into the system Python)
#   * the rustfmt and clippy components, if rustup can add them
set -euo pipefail
cd "$(dirname "$0")/.."

# One list of Debian packages. Later issues add e.g. libhyperscan-dev
# (masking), pgbouncer, haproxy and nginx (comparisons).
APT_PACKAGES=(
    postgresql          # server binaries in /usr/lib/postgresql/15/bin, and the postgres account
    postgresql-client   # psql, pgbench
    postgresql-contrib
    python3-pip
    python3-venv
    ca-certificates
    openssl
    util-linux          # runuser, namei
    procps
    libhyperscan-dev    # masking (issue 6): the hyperscan crate links it through pkg-config
    pkg-config
    golang-1.19-go      # independent verifier of ledger checkpoints and proofs (Go sumdb/note, sumdb/tlog)
    golang-golang-x-mod-dev
    qemu-user           # make test runs the masking suite on an emulated CPU without AVX2
)

log() { printf 'setup: %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        log "need root to run: $*"
        exit 1
    fi
}

# --- Debian packages -------------------------------------------------------
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# --- Python virtualenv -----------------------------------------------------
# Debian's own python3 (not a pyenv shim that may be first on PATH): it is
# the one python3-venv was installed for.
PY=/usr/bin/python3
VENV=var/venv
REQ=tests/python/requirements.txt
STAMP="$VENV/.requirements.sha256"
want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ] \
    || ! "$VENV/bin/python" -c 'import psycopg, pytest, asyncpg' >/dev/null 2>&1; then
    log "creating Python virtualenv in $VENV"
    mkdir -p var
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
    echo "$want" >"$STAMP"
fi

# --- Rust components ---------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1; then
    log "cargo is not installed: install a Rust toolchain (rustup) first"
    exit 1
fi
for comp in rustfmt clippy; do
    sub=fmt
    [ "$comp" = clippy ] && sub=clippy
    if ! cargo "$sub" --version >/dev/null 2>&1; then
        log "adding Rust component $comp"
        rustup component add "$comp"
    fi
done
