#!/usr/bin/env python3
"""Approval round trip: how long after an approver sends POST .../approve
does the held statement complete at the agent?

Needs a running `sluice demo` (its agent.env and admin.env) and the project
virtualenv (var/venv, psycopg). Usage:

  var/venv/bin/python bench/scripts/approval-latency.py [DEMO_DIR] [ROUNDS]

Each round: the agent runs `UPDATE approval_bench SET n = n + 1` (held:
no WHERE clause), the approver thread polls GET /v1/approvals until the
request appears, then POSTs approve. Reported: the time from sending the approve
request to the statement's completion (a new TLS connection to the admin
listener, the approver's token check, the wake-up across threads,
the ledger commit of the approval in strict mode, and the statement
itself), and the time from sending the statement to seeing it pending.
"""

import json
import os
import ssl
import statistics
import sys
import threading
import time
import urllib.request

import psycopg


def read_env(path):
    env = {}
    for line in open(path):
        if line.startswith("export "):
            for pair in line[len("export "):].split():
                k, _, v = pair.partition("=")
                env[k] = v
    return env


def main():
    demo = sys.argv[1] if len(sys.argv) > 1 else "var/demo"
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    agent = read_env(os.path.join(demo, "agent.env"))
    admin = read_env(os.path.join(demo, "admin.env"))
    direct = read_env(os.path.join(demo, "direct.env"))
    context = ssl.create_default_context(cafile=admin["SLUICE_ADMIN_CA"])
    headers = {"Authorization": "Bearer " + admin["SLUICE_ADMIN_TOKEN"]}
    base = admin["SLUICE_ADMIN_URL"]

    def api(method, path, body=None):
        request = urllib.request.Request(base + path, method=method, headers=headers, data=body)
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return json.loads(response.read())

    with psycopg.connect(
        host="127.0.0.1", port=int(direct["PGPORT"]), dbname=direct["PGDATABASE"],
        user=direct["PGUSER"], password=direct["PGPASSWORD"], autocommit=True,
    ) as d:
        d.execute("DROP TABLE IF EXISTS approval_bench")
        d.execute("CREATE TABLE approval_bench (n int)")
        d.execute("INSERT INTO approval_bench VALUES (0)")

    conn = psycopg.connect(
        host=agent["PGHOST"], port=int(agent["PGPORT"]), dbname=agent["PGDATABASE"],
        user=agent["PGUSER"], password=agent["PGPASSWORD"], sslmode="verify-full",
        sslrootcert=agent["PGSSLROOTCERT"], autocommit=True,
    )
    to_complete, to_visible = [], []
    for _ in range(rounds):
        marks = {}

        def approver():
            while True:
                pending = api("GET", "/v1/approvals")["approvals"]
                mine = [v for v in pending if "approval_bench" in v["statement"]]
                if mine:
                    marks["visible"] = time.perf_counter()
                    api("POST", f"/v1/approvals/{mine[0]['id']}/approve", b"{}")
                    return
                time.sleep(0.002)

        thread = threading.Thread(target=approver)
        sent = time.perf_counter()
        thread.start()
        conn.execute("UPDATE approval_bench SET n = n + 1")
        done = time.perf_counter()
        thread.join()
        to_complete.append((done - marks["visible"]) * 1000)
        to_visible.append((marks["visible"] - sent) * 1000)
    n = conn.execute("SELECT n FROM approval_bench").fetchone()[0]
    assert n == rounds, f"expected {rounds} updates, found {n}"

    def summary(name, values):
        values = sorted(values)
        p95 = values[int(len(values) * 0.95) - 1]
        print(f"{name}: median {statistics.median(values):.2f} ms, p95 {p95:.2f} ms, "
              f"min {values[0]:.2f} ms, max {values[-1]:.2f} ms ({len(values)} rounds)")

    summary("approve POST sent -> statement complete", to_complete)
    summary("statement sent -> visible in GET /v1/approvals", to_visible)


if __name__ == "__main__":
    main()
