#!/usr/bin/env bash
# Recording cost, side by side: the same PostgreSQL through three sluice
# instances (recording off, strict, batched), alternating pgbench runs so
# machine noise hits all three equally.
#
# Needs a running `sluice demo` (make demo). Usage:
#   bench/scripts/pgbench-recording.sh [DEMO_DIR] [SECONDS] [ROUNDS]
# PGBENCH_ARGS overrides the load (default: -S -M prepared -c 16 -j 2).
set -euo pipefail
demo_dir=$(realpath "${1:-var/demo}")
seconds=${2:-20}
rounds=${3:-2}
args=${PGBENCH_ARGS:--S -M prepared -c 16 -j 2}
sluice=${SLUICE:-target/release/sluice}
work=$(mktemp -d /tmp/sluice-recording-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

[ -f "$demo_dir/sluice.toml" ] || { echo "start \`make demo\` first" >&2; exit 2; }
if ! (. "$demo_dir/direct.env" && psql -XAtqc "select 1 from pgbench_accounts limit 1" >/dev/null 2>&1); then
    (. "$demo_dir/direct.env" && pgbench -i -s 10 -q >/dev/null)
fi

# One config per mode, derived from the demo's: own port, own ledger.
port=17400
declare -A ports
for mode in off strict batched; do
    port=$((port + 1)); ports[$mode]=$port
    cfg="$work/$mode.toml"
    sed -e "s/^listen = .*/listen = \"127.0.0.1:$port\"/" -e '/^\[ledger\]/,$d' "$demo_dir/sluice.toml" > "$cfg"
    if [ "$mode" != off ]; then
        cat >> "$cfg" <<TOML
[ledger]
directory = "$work/ledger-$mode"
key_file = "$demo_dir/ledger.key"
origin = "sluice.bench/$mode"
durability = "$mode"
server_messages = "full"
TOML
    fi
    "$sluice" serve --config "$cfg" >"$work/$mode.log" 2>&1 &
done
sleep 1

run() { # mode -> tps
    (. "$demo_dir/agent.env" && PGPORT=${ports[$1]} pgbench $args -T "$seconds" 2>&1) | awk '/^tps/ {print $3}'
}
declare -A results
for ((i = 1; i <= rounds; i++)); do
    line="round $i:"
    for mode in off strict batched; do
        tps=$(run "$mode"); results[$mode]+="$tps "
        line+=" $mode $(printf '%.0f' "$tps") tps,"
    done
    echo "${line%,}"
done
python3 - "${results[off]}" "${results[strict]}" "${results[batched]}" <<'PY'
import sys, statistics
off, strict, batched = (statistics.median(float(x) for x in a.split()) for a in sys.argv[1:4])
print(f"median tps: off {off:.0f}, strict {strict:.0f} ({strict/off:.2f}x), batched {batched:.0f} ({batched/off:.2f}x)")
PY
for mode in strict batched; do
    target/release/sluice-ledger verify "$work/ledger-$mode" --key "$demo_dir/ledger.vkey" --quiet && echo "ledger-$mode verifies"
done
