#!/bin/sh
# Compares the masking engine's builds side by side on this machine: the
# same binary (bench/src/bin/masking-rows.rs) run under each
# SLUICE_SIMD_MAX level in alternation, ROUNDS times, so that the machine's
# drift affects every level alike. Prints one line per run; compare the
# medians per level.
#
# usage: bench/scripts/masking-levels.sh [ROUNDS] [pii_dense|pii_free]
set -eu
rounds=${1:-5}
corpus=${2:-pii_dense}
case "$rounds" in
    ''|*[!0-9]*) echo "ROUNDS must be a number" >&2; exit 2 ;;
esac
if [ "$rounds" -gt 50 ]; then echo "at most 50 rounds" >&2; exit 2; fi
cd "$(dirname "$0")/../.."
cargo build --release -p sluice-bench --bin masking-rows >&2
bin=target/release/masking-rows
i=0
while [ "$i" -lt "$rounds" ]; do
    for level in baseline v3 top; do
        if [ "$level" = top ]; then
            printf '%-8s ' "$level"; env -u SLUICE_SIMD_MAX "$bin" "$corpus"
        else
            printf '%-8s ' "$level"; SLUICE_SIMD_MAX=$level "$bin" "$corpus"
        fi
    done
    i=$((i + 1))
done
