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
. "$(dirname "$0")/lib/demo-pair.sh"

pair_check_demo
grep -q '^\[masking\]' "$demo_dir/sluice.toml" || { echo "the demo config has no [masking] section" >&2; exit 2; }
port=${BENCH_PORT_BASE:-17500}
pair_start off $((port + 1)) "$sluice" off
pair_start on $((port + 2)) "$sluice" on
pair_wait off on

# Masking really is on in one and off in the other.
probe="select email from customers order by id limit 1"
on_email=$(pair_psql on -c "$probe")
off_email=$(pair_psql off -c "$probe")
echo "probe: on sees $on_email, off sees $off_email"
[ "$on_email" != "$off_email" ] || { echo "masking made no difference" >&2; exit 1; }

bulk_sql="\\copy ($(pair_rows_sql "$bulk_mib")) to stdout"

declare -A tps bulk
for ((i = 1; i <= rounds; i++)); do
    line="pgbench round $i:"
    for mode in off on; do
        t=$(pair_pgbench "$mode"); tps[$mode]+="$t "
        line+=" $mode $(printf '%.0f' "$t") tps,"
    done
    echo "${line%,}"
done
for ((i = 1; i <= rounds; i++)); do
    line="bulk round $i:"
    for mode in off on; do
        read -r bytes secs < <(pair_timed "$mode" -c "$bulk_sql")
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
