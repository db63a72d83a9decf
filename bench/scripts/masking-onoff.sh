#!/usr/bin/env bash
# Masking cost, side by side: the same PostgreSQL through two sluice
# instances built from the demo's config, one with masking on (every
# built-in detector, the demo's default profile) and one with masking off;
# recording is off in both so that only masking differs. Runs alternate, so
# machine noise hits both equally.
#
#   1. pgbench (default -S -M prepared -c 16 -j 2) for SECONDS, ROUNDS times.
#   2. A bulk result of at least BULK_MIB MiB: `\copy (SELECT customers
#      repeated) TO STDOUT`, the demo's PII-dense customers table, counted
#      with wc -c, ROUNDS times. The column rules of the demo are left out
#      of the "on" instance: under column rules COPY data is masked whole
#      without scanning, and the scan is what this measures.
#
# Needs a running `sluice demo` (make demo) and a release build. Usage:
#   bench/scripts/masking-onoff.sh [DEMO_DIR] [SECONDS] [ROUNDS] [BULK_MIB]
# PGBENCH_ARGS overrides the load; SLUICE the binary.
set -euo pipefail
demo_dir=$(realpath "${1:-var/demo}")
seconds=${2:-20}
rounds=${3:-2}
bulk_mib=${4:-1100}
args=${PGBENCH_ARGS:--S -M prepared -c 16 -j 2}
sluice=${SLUICE:-target/release/sluice}
work=$(mktemp -d /tmp/sluice-masking-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

[ -f "$demo_dir/sluice.toml" ] || { echo "start \`make demo\` first" >&2; exit 2; }
grep -q '^\[masking\]' "$demo_dir/sluice.toml" || { echo "the demo config has no [masking] section" >&2; exit 2; }
if ! (. "$demo_dir/direct.env" && psql -XAtqc "select 1 from pgbench_accounts limit 1" >/dev/null 2>&1); then
    (. "$demo_dir/direct.env" && pgbench -i -s 10 -q >/dev/null)
fi

# One config per mode, derived from the demo's: own port, no ledger, no
# column rules; "off" disables the [masking] section.
port=${BENCH_PORT_BASE:-17500}
declare -A ports
for mode in off on; do
    port=$((port + 1)); ports[$mode]=$port
    cfg="$work/$mode.toml"
    # Own [server] listen address; no admin listener (the demo's would
    # collide between the two instances), ledger or column rules.
    awk -v listen="listen = \"127.0.0.1:$port\"" '
        /^\[/ { section = $0; skip = (section == "[ledger]" || section == "[[masking.column_rules]]" || section == "[admin]" || section == "[[approvers]]") }
        section == "[server]" && /^listen = / { print listen; next }
        !skip' "$demo_dir/sluice.toml" > "$cfg"
    if [ "$mode" = off ]; then
        sed -i 's/^\[masking\]$/[masking]\nenabled = false/' "$cfg"
    fi
    "$sluice" check-config "$cfg" >/dev/null
    "$sluice" serve --config "$cfg" >"$work/$mode.log" 2>&1 &
done
# Wait until both listen (start-up compiles the detectors and resolves
# the demo's keys; a fixed sleep was too short on a busy machine).
for mode in off on; do
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/${ports[$mode]}") 2>/dev/null && break
        sleep 0.1
    done
    (exec 3<>"/dev/tcp/127.0.0.1/${ports[$mode]}") 2>/dev/null ||
        { echo "sluice ($mode) did not start:" >&2; cat "$work/$mode.log" >&2; exit 1; }
done

# Masking really is on in one and off in the other.
probe="select email from customers order by id limit 1"
on_email=$(. "$demo_dir/agent.env" && PGPORT=${ports[on]} psql -XAtqc "$probe")
off_email=$(. "$demo_dir/agent.env" && PGPORT=${ports[off]} psql -XAtqc "$probe")
echo "probe: on sees $on_email, off sees $off_email"
[ "$on_email" != "$off_email" ] || { echo "masking made no difference" >&2; exit 1; }

run_pgbench() { # mode -> tps
    (. "$demo_dir/agent.env" && PGPORT=${ports[$1]} pgbench $args -T "$seconds" 2>&1) | awk '/^tps/ {print $3}'
}

# Enough copies of customers for BULK_MIB MiB of COPY text.
table_bytes=$(. "$demo_dir/direct.env" && psql -XAtqc "copy customers to stdout" | wc -c)
copies=$(( (bulk_mib * 1024 * 1024 + table_bytes - 1) / table_bytes ))
bulk_sql="\\copy (select c.* from customers c cross join generate_series(1, $copies)) to stdout"
run_bulk() { # mode -> "bytes seconds"
    local start end bytes
    start=$(date +%s.%N)
    bytes=$( (. "$demo_dir/agent.env" && PGPORT=${ports[$1]} psql -XAtq -c "$bulk_sql") | wc -c)
    end=$(date +%s.%N)
    echo "$bytes $(echo "$end - $start" | bc)"
}

declare -A tps bulk
for ((i = 1; i <= rounds; i++)); do
    line="pgbench round $i:"
    for mode in off on; do
        t=$(run_pgbench "$mode"); tps[$mode]+="$t "
        line+=" $mode $(printf '%.0f' "$t") tps,"
    done
    echo "${line%,}"
done
for ((i = 1; i <= rounds; i++)); do
    line="bulk round $i:"
    for mode in off on; do
        read -r bytes secs < <(run_bulk "$mode")
        bulk[$mode]+="$bytes:$secs "
        line+=" $mode $bytes bytes in ${secs}s ($(echo "scale=1; $bytes / $secs / 1048576" | bc) MiB/s),"
    done
    echo "${line%,}"
done
python3 - "${tps[off]}" "${tps[on]}" "${bulk[off]}" "${bulk[on]}" <<'PY'
import sys, statistics
off, on = (statistics.median(float(x) for x in a.split()) for a in sys.argv[1:3])
print(f"pgbench median tps: off {off:.0f}, on {on:.0f} ({on/off:.3f}x)")
def rate(a):
    pairs = [tuple(map(float, x.split(":"))) for x in a.split()]
    return statistics.median(b / s for b, s in pairs) / 1048576, pairs[0][0]
(boff, size), (bon, _) = rate(sys.argv[3]), rate(sys.argv[4])
print(f"bulk median MiB/s ({size / 1048576:.0f} MiB per run): off {boff:.0f}, on {bon:.0f} ({bon/boff:.3f}x)")
PY
grep -h "session closed" "$work/on.log" | grep -o 'masked=[0-9]*' | awk -F= '{s += $2} END {print "values masked by the on instance:", s}'
