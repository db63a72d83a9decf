#!/usr/bin/env bash
# Recording cost, side by side: the same PostgreSQL through three sluice
# instances (recording off, strict, batched), alternating pgbench runs so
# machine noise hits all three equally.
#
# Needs a running `sluice demo` (make demo). Usage:
#   bench/scripts/pgbench-recording.sh [DEMO_DIR] [SECONDS] [ROUNDS]
# PGBENCH_ARGS overrides the load (default: -S -M prepared -c 16 -j 2).
# Each run also reports the machine's idle CPU and sluice's CPU per
# transaction: strict mode costs throughput both ways, by idling the cores
# while statements wait for flushes and by the CPU each flush takes
# (bench/scripts/durable-write-cost.py measures the latter for the disk).
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
declare -A ports pids
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
    pids[$mode]=$!
done
sleep 1

busy_ticks() { awk '/^cpu / {print $2+$3+$4+$7+$8+$9; exit}' /proc/stat; }
all_ticks() { awk '/^cpu / {print $2+$3+$4+$5+$6+$7+$8+$9; exit}' /proc/stat; }
process_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

run() { # mode -> "tps idle_percent sluice_cpu_us_per_transaction"
    local busy0 all0 own0 tps
    busy0=$(busy_ticks); all0=$(all_ticks); own0=$(process_ticks "${pids[$1]}")
    tps=$( (. "$demo_dir/agent.env" && PGPORT=${ports[$1]} pgbench $args -T "$seconds" 2>&1) | awk '/^tps/ {print $3}')
    python3 - "$tps" "$seconds" "$busy0" "$(busy_ticks)" "$all0" "$(all_ticks)" "$own0" "$(process_ticks "${pids[$1]}")" "$(getconf CLK_TCK)" <<'PY'
import sys
tps, seconds, b0, b1, a0, a1, o0, o1, hz = map(float, sys.argv[1:])
idle = 100 * (1 - (b1 - b0) / max(a1 - a0, 1))
cpu_us = (o1 - o0) / hz / max(tps * seconds, 1) * 1e6
print(f"{tps:.0f} {idle:.0f} {cpu_us:.1f}")
PY
}
declare -A results
for ((i = 1; i <= rounds; i++)); do
    line="round $i:"
    for mode in off strict batched; do
        read -r tps idle cpu_us <<<"$(run "$mode")"
        results[$mode]+="$tps "
        line+=" $mode $tps tps (idle ${idle}%, sluice ${cpu_us} us CPU/tx),"
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
