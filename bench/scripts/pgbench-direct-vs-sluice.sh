#!/usr/bin/env bash
# Side-by-side pgbench: the same PostgreSQL reached directly and through
# sluice, alternating runs so that machine noise hits both equally.
#
# Needs a running `sluice demo` (make demo) and its env files. Usage:
#   bench/scripts/pgbench-direct-vs-sluice.sh [DEMO_DIR] [SECONDS] [ROUNDS]
# Extra pgbench arguments come from PGBENCH_ARGS (default: -S -M prepared -c 16 -j 2).
# SLUICE_PORT points the sluice side at another instance (e.g. one without a
# [ledger], to measure the gateway alone).
set -euo pipefail
demo_dir=${1:-var/demo}
seconds=${2:-20}
rounds=${3:-2}
args=${PGBENCH_ARGS:--S -M prepared -c 16 -j 2}

for f in agent.env direct.env; do
    [ -f "$demo_dir/$f" ] || { echo "missing $demo_dir/$f: start \`make demo\` first" >&2; exit 2; }
done

# pgbench tables are created directly (sluice is not an admin path).
if ! (. "$demo_dir/direct.env" && psql -XAtqc "select 1 from pgbench_accounts limit 1" >/dev/null 2>&1); then
    (. "$demo_dir/direct.env" && pgbench -i -s 10 -q >/dev/null)
fi

run() {
    local label=$1 envfile=$2
    # shellcheck disable=SC1090
    tps=$(. "$envfile" && if [ "$label" = sluice ] && [ -n "${SLUICE_PORT:-}" ]; then PGPORT=$SLUICE_PORT; fi \
        && pgbench $args -T "$seconds" 2>&1 | awk '/^tps/ {print $3}')
    printf '%s\t%s\n' "$label" "$tps"
}

declare -a direct_runs sluice_runs
for ((i = 1; i <= rounds; i++)); do
    d=$(run direct "$demo_dir/direct.env" | cut -f2); direct_runs+=("$d")
    s=$(run sluice "$demo_dir/agent.env" | cut -f2); sluice_runs+=("$s")
    printf 'round %d: direct %.0f tps, sluice %.0f tps\n' "$i" "$d" "$s"
done
python3 - "${direct_runs[*]}" "${sluice_runs[*]}" <<'PY'
import sys, statistics
d = [float(x) for x in sys.argv[1].split()]
s = [float(x) for x in sys.argv[2].split()]
md, ms = statistics.median(d), statistics.median(s)
print(f"median: direct {md:.0f} tps, sluice {ms:.0f} tps, ratio {ms/md:.2f}")
PY
