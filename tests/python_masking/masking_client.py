"""psycopg 3 client for tests/e2e_masking.rs: reads the `people` table
through sluice in the ways an agent would (binary results, server-side
prepared statements, text results, JSON, a parameter status set from data,
a notice and a notification) and prints everything it received as one JSON
document on stdout. The Rust test decides what may and may not appear.

Environment: SLUICE_GW_PORT, SLUICE_AGENT, SLUICE_TOKEN, SLUICE_CA, read by
tests/python_common/sluice_settings.py (the Rust test puts it on PYTHONPATH).
"""

import json
import sys

import psycopg
from sluice_settings import gateway_kwargs


def main():
    kwargs = dict(gateway_kwargs(), autocommit=True)
    out = {}
    notices = []
    with psycopg.connect(**kwargs) as conn:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        query = (
            "SELECT id, name, email, phone, card, ssn, notes, doc, docb, secret, amount, "
            "email::varchar AS email_varchar FROM people ORDER BY id"
        )
        with conn.cursor(binary=True) as cur:
            cur.execute(query)
            out["binary_types"] = [d.type_code for d in cur.description]
            out["binary"] = cur.fetchall()
        # Server-side prepared statements: psycopg prepares a statement after
        # it ran prepare_threshold times, or at once with prepare=True; rows
        # then come from a Bind of a named statement.
        prepared = []
        for _ in range(3):
            with conn.cursor(binary=True) as cur:
                cur.execute(
                    "SELECT id, email, docb, amount FROM people WHERE id = %s",
                    (1,),
                    prepare=True,
                )
                prepared.append(cur.fetchall())
        out["prepared"] = prepared
        with conn.cursor() as cur:
            cur.execute("SELECT id, email, doc, docb FROM people ORDER BY id")
            out["text"] = cur.fetchall()
        with conn.cursor() as cur:
            cur.execute(
                "SELECT set_config('application_name', email, false) FROM people WHERE id = 1"
            )
            out["set_config"] = cur.fetchall()
        out["application_name"] = conn.info.parameter_status("application_name")
        with conn.cursor() as cur:
            cur.execute(
                "DO $$ BEGIN RAISE NOTICE 'ssn on file: %', "
                "(SELECT ssn FROM people WHERE id = 1); END $$"
            )
        out["notices"] = notices
        conn.execute("LISTEN masked_channel")
        conn.execute(
            "SELECT pg_notify('masked_channel', 'card ' || card) FROM people WHERE id = 1"
        )
        gen = conn.notifies(timeout=5, stop_after=1)
        out["notifies"] = [n.payload for n in gen]
        try:
            conn.execute("SELECT (SELECT email FROM people WHERE id = 1)::integer")
            out["error"] = None
        except psycopg.Error as e:
            out["error"] = str(e)
    json.dump(out, sys.stdout, default=str)


if __name__ == "__main__":
    main()
