#!/usr/bin/env bash
# Masking cost of two builds, side by side: the same PostgreSQL through two
# sluice instances with masking on (the demo's config without ledger,
# column rules or admin listener), one running binary A and one binary B
# (for example the previous commit's build and this one's). Rounds
# alternate, so machine noise hits both equally.
#
#   1. pgbench (default -S -M prepared -c 8 -j 2) for SECONDS.
#   2. A bulk `\copy (SELECT customers repeated) TO STDOUT` of BULK_MIB MiB
#      (CopyData through the masking stage), counted with wc -c.
#   3. The same rows as a SELECT fetched in batches of 10,000 (DataRows
#      through the masking stage), counted with wc -c.
#
# Needs a running `sluice demo`. Usage:
#   bench/scripts/masking-a-vs-b.sh BINARY_A BINARY_B [DEMO_DIR] [SECONDS] [ROUNDS] [BULK_MIB]
set -euo pipefail
binary_a=$(realpath "$1")
binary_b=$(realpath "$2")
demo_dir=$(realpath "${3:-var/demo}")
seconds=${4:-15}
rounds=${5:-3}
bulk_mib=${6:-300}
args=${PGBENCH_ARGS:--S -M prepared -c 8 -j 2}
work=$(mktemp -d /tmp/sluice-masking-ab.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
. "$(dirname "$0")/lib/demo-pair.sh"

pair_check_demo
port=${BENCH_PORT_BASE:-17600}
pair_start a $((port + 1)) "$binary_a" on
pair_start b $((port + 2)) "$binary_b" on
pair_wait a b

probe="select email from customers order by id limit 1"
for build in a b; do
    echo "probe $build: $(pair_psql "$build" -c "$probe")"
done
rows_sql=$(pair_rows_sql "$bulk_mib")

declare -A tps copy select
for ((i = 1; i <= rounds; i++)); do
    line="round $i:"
    for build in a b; do
        t=$(pair_pgbench "$build"); tps[$build]+="$t "
        read -r bytes secs < <(pair_timed "$build" -c "\\copy ($rows_sql) to stdout")
        copy[$build]+="$bytes:$secs "
        read -r sbytes ssecs < <(pair_timed "$build" -v FETCH_COUNT=10000 -c "$rows_sql")
        select[$build]+="$sbytes:$ssecs "
        line+=" $build $(printf '%.0f' "$t") tps, copy $(echo "scale=1; $bytes / $secs / 1048576" | bc) MiB/s, select $(echo "scale=1; $sbytes / $ssecs / 1048576" | bc) MiB/s;"
    done
    echo "${line%;}"
done
python3 - "${tps[a]}" "${tps[b]}" "${copy[a]}" "${copy[b]}" "${select[a]}" "${select[b]}" <<'PY'
import sys, statistics
a, b = (statistics.median(float(x) for x in s.split()) for s in sys.argv[1:3])
print(f"pgbench median tps: A {a:.0f}, B {b:.0f} ({b/a:.3f}x)")
def rate(s):
    pairs = [tuple(map(float, x.split(":"))) for x in s.split()]
    return statistics.median(n / t for n, t in pairs) / 1048576, pairs[0][0]
for name, i in (("copy", 3), ("select", 5)):
    (ra, size), (rb, _) = rate(sys.argv[i]), rate(sys.argv[i + 1])
    print(f"{name} median MiB/s ({size / 1048576:.0f} MiB per run): A {ra:.0f}, B {rb:.0f} ({rb/ra:.3f}x)")
PY
