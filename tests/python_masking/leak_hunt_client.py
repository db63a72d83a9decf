"""psycopg 3 attacker for tests/e2e_masking.rs: tries to get the sensitive
values of the `people` table out through sluice in the shapes and channels
an agent (or a script an LLM wrote) would use: arrays, composites, hstore,
citext, domains, enums, bytea, xml and JSON built from rows, all in binary
and in text results; values in column names, notification channels,
notices and every error field; a named (server-side) cursor fetched in
small batches; binary COPY; and a value larger than one read of the
socket.

Every attempt's outcome (rows, column names, error fields, notices,
notifications, COPY bytes) is printed as one JSON object keyed by the
attempt's name. Nothing is judged here: the Rust test decides what may
appear. Bytes are decoded as Latin-1 so that a value hidden in a binary
structure is still visible to the Rust test as text.

Environment: SLUICE_GW_PORT, SLUICE_AGENT, SLUICE_TOKEN, SLUICE_CA (read by
tests/python_common/sluice_settings.py, which the Rust test puts on
PYTHONPATH), and optionally LEAK_HUNT_SKIP (attempt names to leave out,
comma-separated).
"""

import json
import os
import sys

import psycopg
from sluice_settings import gateway_kwargs


def text_of(value):
    """Everything a result value holds, as text (bytes as Latin-1)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("latin-1")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(text_of(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{text_of(k)}: {text_of(v)}" for k, v in value.items()) + "}"
    return str(value)


def error_text(e):
    """Every field of a server error (message, detail, hint, context, ...)."""
    d = e.diag
    fields = [
        d.message_primary, d.message_detail, d.message_hint, d.context,
        d.internal_query, d.schema_name, d.table_name, d.column_name,
        d.datatype_name, d.constraint_name, d.sqlstate,
    ]
    return "ERROR " + " | ".join(f for f in fields if f)


def main():
    kwargs = dict(gateway_kwargs(), autocommit=True)
    out = {}
    with psycopg.connect(**kwargs) as conn:
        notices = []
        conn.add_notice_handler(
            lambda d: notices.append(
                " | ".join(
                    f for f in (d.message_primary, d.message_detail, d.message_hint, d.context) if f
                )
            )
        )

        # Attempts the caller leaves out (comma-separated names).
        skip = set(filter(None, os.environ.get("LEAK_HUNT_SKIP", "").split(",")))

        def attempt(name, sql, binary, params=None):
            if name in skip:
                return
            try:
                with conn.cursor(binary=binary) as cur:
                    cur.execute(sql, params)
                    names = [d.name for d in cur.description] if cur.description else []
                    rows = cur.fetchall() if cur.description else []
                    out[name] = "columns " + text_of(names) + " rows " + text_of(rows)
            except psycopg.Error as e:
                out[name] = error_text(e)
            except ValueError as e:
                # The client could not decode what it received (a masked
                # value that no longer parses as its type).
                out[name] = f"UNDECODABLE {type(e).__name__}: {e}"

        shapes = {
            "text_array": "SELECT array_agg(email ORDER BY id) FROM people",
            "varchar_array": "SELECT array_agg(email::varchar ORDER BY id) FROM people",
            "name_array": "SELECT array[email::name, ssn::name] FROM people WHERE id = 1",
            "bpchar_array": "SELECT array[card::bpchar] FROM people WHERE id = 1",
            "nested_array": "SELECT array[array[email, phone], array[card, ssn]] FROM people WHERE id = 1",
            "jsonb_array": "SELECT array[docb] FROM people WHERE id = 1",
            "record_of_table": "SELECT p FROM people p WHERE id = 1",
            "row_constructor": "SELECT row(email, ssn, card) FROM people WHERE id = 1",
            "array_of_records": "SELECT array_agg(row(email, card)) FROM people",
            "record_with_array": "SELECT row(id, array[email, card]) FROM people WHERE id = 1",
            "hstore": "SELECT hstore(array['email', 'card'], array[email, card]) FROM people WHERE id = 1",
            "citext": "SELECT email::citext, card::citext FROM people WHERE id = 1",
            "citext_array": "SELECT array[email::citext] FROM people WHERE id = 1",
            "domain": "SELECT email::leak_mail, ssn::leak_mail FROM people WHERE id = 1",
            "domain_array": "SELECT array[email::leak_mail] FROM people WHERE id = 1",
            "name": "SELECT email::name, card::name FROM people WHERE id = 1",
            "bpchar": "SELECT email::bpchar, card::char(19) FROM people WHERE id = 1",
            "xml": "SELECT xmlelement(name e, email, ' ', card) FROM people WHERE id = 1",
            "bytea_convert_to": "SELECT convert_to(email, 'UTF8'), convert_to(notes, 'UTF8') FROM people WHERE id = 1",
            "bytea_cast": "SELECT email::bytea, secret::bytea FROM people WHERE id = 1",
            "json_agg": "SELECT json_agg(p) FROM people p",
            "jsonb_agg": "SELECT jsonb_agg(p) FROM people p",
            "to_json_row": "SELECT to_json(p), to_jsonb(p) FROM people p WHERE id = 1",
            "jsonb_build_object": "SELECT jsonb_build_object('e', email, 'c', card, 's', ssn) FROM people WHERE id = 1",
            "json_array_elements": "SELECT jsonb_array_elements(jsonb_agg(email)) FROM people",
            "format_concat": "SELECT format('%s|%s|%s', email, ssn, card), concat(email, ';', card), concat_ws('/', phone, ssn) FROM people WHERE id = 1",
            "string_agg_comma": "SELECT string_agg(email || ',' || card, ',') FROM people",
            "string_agg_glued": "SELECT string_agg(email, '') , string_agg(card, '') FROM people",
            "many_rows": "SELECT g, email, card FROM people, generate_series(1, 2000) g",
            "large_value": "SELECT repeat('x ', 300000) || email || repeat(' y', 300000) || ' ' || card FROM people WHERE id = 1",
            "enum": "SELECT enum_range(NULL::leak_enum), (SELECT email FROM people WHERE id = 1)::leak_enum",
            "int8_card": "SELECT amount FROM people WHERE id = 1",
            "card_dots": "SELECT replace(card, ' ', '.') FROM people WHERE id = 1",
            "ssn_spaces": "SELECT replace(ssn, '-', ' ') FROM people WHERE id = 1",
            "card_fullwidth": "SELECT translate(card, '0123456789', '０１２３４５６７８９') FROM people WHERE id = 1",
            "email_fullwidth_at": "SELECT replace(email, '@', '＠') FROM people WHERE id = 1",
            "email_unicode_neighbours": "SELECT 'é' || email || 'ü' FROM people WHERE id = 1",
            "card_nbsp": "SELECT replace(card, ' ', chr(160)) FROM people WHERE id = 1",
            "split_columns": "SELECT split_part(email, '@', 1), split_part(email, '@', 2) FROM people WHERE id = 1",
            "base64": "SELECT encode(convert_to(email, 'UTF8'), 'base64') FROM people WHERE id = 1",
        }
        for name, sql in shapes.items():
            attempt("text " + name, sql, False)
            attempt("binary " + name, sql, True)

        # Values in column names: a view whose column is named after data
        # (built with dynamic SQL, so the agent never wrote the value).
        attempt(
            "column name from data",
            "DO $$ BEGIN EXECUTE format('CREATE OR REPLACE TEMP VIEW leak_v AS SELECT 1 AS %I', "
            "(SELECT email FROM people WHERE id = 1)); END $$",
            False,
        )
        attempt("column name from data select", "SELECT * FROM leak_v", True)

        # Notifications: the payload and the channel name.
        conn.execute("LISTEN leak_channel")
        conn.execute(
            "DO $$ BEGIN EXECUTE format('LISTEN %I', (SELECT email FROM people WHERE id = 1)); END $$"
        )
        conn.execute("SELECT pg_notify('leak_channel', email || ' ' || card) FROM people WHERE id = 1")
        conn.execute(
            "SELECT pg_notify(email, 'from the channel name') FROM people WHERE id = 1"
        )
        got = [f"{n.channel}: {n.payload}" for n in conn.notifies(timeout=5, stop_after=2)]
        out["notifications"] = " || ".join(got)

        # Every field of errors and notices that can echo data.
        attempt(
            "raise every field",
            "DO $$ DECLARE r people; BEGIN SELECT * INTO r FROM people WHERE id = 1; "
            "RAISE EXCEPTION 'message %', r.email USING DETAIL = r.card, HINT = r.ssn, "
            "COLUMN = r.phone, CONSTRAINT = r.email, DATATYPE = r.card, TABLE = r.ssn, "
            "SCHEMA = r.secret; END $$",
            False,
        )
        attempt("cast error", "SELECT email::int FROM people WHERE id = 1", False)
        attempt("cast error binary", "SELECT card::int FROM people WHERE id = 1", True)
        attempt(
            "unique violation",
            "INSERT INTO people (id, email) SELECT 100, email FROM people WHERE id = 1",
            False,
        )
        attempt(
            "check violation failing row",
            "CREATE TEMP TABLE IF NOT EXISTS leak_check (e text, c text, CHECK (e = 'x')); "
            "INSERT INTO leak_check SELECT email, card FROM people WHERE id = 1",
            False,
        )
        attempt(
            "context of a nested error",
            "DO $$ BEGIN PERFORM (SELECT email FROM people WHERE id = 1)::int; END $$",
            False,
        )
        attempt(
            "notice with detail",
            "DO $$ BEGIN RAISE NOTICE 'n %', (SELECT email FROM people WHERE id = 1) "
            "USING DETAIL = (SELECT card FROM people WHERE id = 1); END $$",
            False,
        )
        out["notices"] = " || ".join(notices)

        # Parameter statuses and SHOW.
        attempt(
            "set application_name",
            "SELECT set_config('application_name', email || ' ' || card, false) FROM people WHERE id = 1",
            False,
        )
        out["parameter status"] = conn.info.parameter_status("application_name") or ""
        attempt("show application_name", "SHOW application_name", True)
        attempt(
            "pg_stat_activity",
            "SELECT query, application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()",
            True,
        )

        # A named cursor: DECLARE, then FETCH in batches of 1.
        try:
            with conn.transaction():
                with conn.cursor("leak_cursor", binary=True) as cur:
                    cur.itersize = 1
                    cur.execute("SELECT email, array[card], row(ssn) FROM people ORDER BY id")
                    out["named cursor"] = text_of([r for r in cur])
        except psycopg.Error as e:
            out["named cursor"] = error_text(e)

        # executemany: psycopg pipelines Bind/Execute pairs; the session
        # remembers each until answered (masking.pending_binds_max).
        try:
            with conn.cursor() as cur:
                cur.execute("CREATE TEMP TABLE leak_many (n int, e text)")
                cur.executemany(
                    "INSERT INTO leak_many VALUES (%s, %s)",
                    [(i, f"x{i}@example.io") for i in range(5000)],
                )
                cur.execute("SELECT count(*), min(e) FROM leak_many")
                out["executemany"] = text_of(cur.fetchall())
        except psycopg.Error as e:
            out["executemany"] = error_text(e)

        # Binary COPY through psycopg.
        try:
            with conn.cursor() as cur:
                data = bytearray()
                with cur.copy(
                    "COPY (SELECT email, array[card], row(ssn, phone) FROM people ORDER BY id) "
                    "TO STDOUT (FORMAT binary)"
                ) as copy:
                    for chunk in copy:
                        data += chunk
                out["binary copy"] = text_of(bytes(data))
        except psycopg.Error as e:
            out["binary copy"] = error_text(e)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
