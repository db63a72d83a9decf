#!/usr/bin/env python3
"""asyncpg directly against PostgreSQL and through sluice, side by side.

Needs a running `sluice demo` (its agent.env and direct.env: the demo's
policy, masking with column rules and recording) and the project
virtualenv (var/venv, asyncpg). Usage:

  var/venv/bin/python bench/scripts/asyncpg-direct-vs-sluice.py [DEMO_DIR] [ROUNDS]

Each round runs every workload once directly and once through sluice, in
alternating order (machine noise hits both alike); the medians are
reported with their ratio:

  prepared    one prepared statement (Parse and Describe once), then
              sequential Bind/Execute/Sync round trips, binary results
  rows        `SELECT * FROM customers LIMIT 5000` (PII-dense rows, binary
              formats, masked through sluice), rows per second
  executemany a pipelined executemany of 20000 rows into a temporary table
"""

import asyncio
import os
import ssl
import statistics
import sys
import time

import asyncpg

PREPARED_ROUND_TRIPS = 3000
ROWS_QUERY = "SELECT * FROM customers LIMIT 5000"
ROWS_REPEATS = 5
EXECUTEMANY_ROWS = 20000


def read_env(path):
    env = {}
    # `export A=1 B=2 \` continues on the next line.
    for line in open(path).read().replace("\\\n", " ").splitlines():
        if line.startswith("export "):
            for pair in line[len("export "):].split():
                k, _, v = pair.partition("=")
                env[k] = v.strip("'\"")
    return env


def connect_kwargs(env):
    kwargs = dict(
        host=env["PGHOST"],
        port=int(env["PGPORT"]),
        user=env["PGUSER"],
        password=env["PGPASSWORD"],
        database=env["PGDATABASE"],
        timeout=10,
        command_timeout=120,
    )
    if env.get("PGSSLMODE", "disable") == "verify-full":
        context = ssl.create_default_context(cafile=env["PGSSLROOTCERT"])
        kwargs["ssl"] = context
    else:
        kwargs["ssl"] = False
    return kwargs


async def prepared(conn):
    statement = await conn.prepare("SELECT id, name, email FROM customers WHERE id = $1")
    started = time.perf_counter()
    for i in range(PREPARED_ROUND_TRIPS):
        await statement.fetchrow(1 + i % 1000)
    return PREPARED_ROUND_TRIPS / (time.perf_counter() - started)


async def rows(conn):
    started = time.perf_counter()
    count = 0
    for _ in range(ROWS_REPEATS):
        count += len(await conn.fetch(ROWS_QUERY))
    return count / (time.perf_counter() - started)


async def executemany(conn):
    await conn.execute("CREATE TEMP TABLE IF NOT EXISTS bench_many (id int, note text)")
    await conn.execute("DELETE FROM bench_many WHERE id >= 0")
    data = [(i, f"note {i}") for i in range(EXECUTEMANY_ROWS)]
    started = time.perf_counter()
    await conn.executemany("INSERT INTO bench_many VALUES ($1, $2)", data)
    return EXECUTEMANY_ROWS / (time.perf_counter() - started)


WORKLOADS = [("prepared", prepared, "round trips/s"), ("rows", rows, "rows/s"),
             ("executemany", executemany, "rows/s")]


async def main():
    demo = sys.argv[1] if len(sys.argv) > 1 else "var/demo"
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    paths = {"direct": "direct.env", "sluice": "agent.env"}
    kwargs = {name: connect_kwargs(read_env(os.path.join(demo, f))) for name, f in paths.items()}
    conns = {name: await asyncpg.connect(**kw) for name, kw in kwargs.items()}
    results = {(w, t): [] for w, _, _ in WORKLOADS for t in conns}
    try:
        for r in range(rounds):
            order = ["direct", "sluice"] if r % 2 == 0 else ["sluice", "direct"]
            for name, workload, _ in WORKLOADS:
                for target in order:
                    results[(name, target)].append(await workload(conns[target]))
    finally:
        for conn in conns.values():
            await conn.close()
    print(f"asyncpg {asyncpg.__version__}, {rounds} rounds, medians")
    print("| workload | direct | sluice | sluice/direct |")
    print("| --- | --- | --- | --- |")
    for name, _, unit in WORKLOADS:
        direct = statistics.median(results[(name, "direct")])
        through = statistics.median(results[(name, "sluice")])
        print(f"| {name} ({unit}) | {direct:,.0f} | {through:,.0f} | {through / direct:.2f} |")


if __name__ == "__main__":
    asyncio.run(main())
