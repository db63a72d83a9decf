#!/bin/sh
# Splits the masking engine's time per row into work and mispredicted
# branches: each part of the scan (a set of detectors) runs over the full
# corpus of varied rows and over the same number of rows cycling through
# 64 distinct ones (which the branch predictor learns), alternately, so
# that the machine's drift affects both alike. The difference is the cost
# of branches mispredicted on varied rows. Prints one line per part and
# round: nanoseconds per row varied, repeated, and their difference.
#
# usage: bench/scripts/masking-branches.sh [ROUNDS] [pii_dense|pii_free]
set -eu
rounds=${1:-3}
corpus=${2:-pii_dense}
case "$rounds" in
    ''|*[!0-9]*) echo "ROUNDS must be a number" >&2; exit 2 ;;
esac
if [ "$rounds" -gt 20 ]; then echo "at most 20 rounds" >&2; exit 2; fi
cd "$(dirname "$0")/../.."
cargo build --release -p sluice-bench --bin masking-rows >&2
bin=target/release/masking-rows
ns() { "$bin" "$corpus" 16 5 "$@" | sed -n 's/.*: \([0-9.]*\) ns\/row.*/\1/p'; }
numeric=card,ssn,phone,ipv4,iban
anchors=email,aws_access_key_id,aws_secret_key,github_token,slack_token,stripe_key,google_api_key,jwt,pem_private_key
printf '%-8s %10s %10s %10s\n' part varied repeated mispredict
i=0
while [ "$i" -lt "$rounds" ]; do
    for part in all numeric iban anchors ipv6; do
        case $part in
            all) set -- ;;
            numeric) set -- --detectors "$numeric" ;;
            anchors) set -- --detectors "$anchors" ;;
            *) set -- --detectors "$part" ;;
        esac
        varied=$(ns "$@")
        repeated=$(ns --distinct-rows 64 "$@")
        printf '%-8s %10s %10s %10s\n' "$part" "$varied" "$repeated" \
            "$(awk -v a="$varied" -v b="$repeated" 'BEGIN { printf "%.1f", a - b }')"
    done
    i=$((i + 1))
done
