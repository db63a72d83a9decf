"""psycopg 3 (a real Python driver, with its bundled libpq) through sluice.

Each test compares with what PostgreSQL itself returns where that makes
the assertion stronger than a hard-coded value.
"""

import decimal
import threading
import time

import psycopg
import pytest
from psycopg import errors, sql


def test_server_side_parameters(conn):
    # psycopg 3 binds parameters server-side (extended protocol: Parse/Bind).
    cur = conn.execute(
        "SELECT %s::int + %s::int, %s::text || '!', %s::numeric * 2, %s::jsonb ->> 'k'",
        (40, 2, "hi", decimal.Decimal("1.25"), '{"k": "v"}'),
    )
    assert cur.fetchone() == (42, "hi!", decimal.Decimal("2.50"), "v")
    # NULL and a quote-laden string never need client-side escaping.
    nasty = "O'Brien; DROP TABLE items; --"
    assert conn.execute("SELECT %s, %s::int IS NULL", (nasty, None)).fetchone() == (nasty, True)
    assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == 5000


def test_binary_results_match_direct(conn, direct):
    query = "SELECT id, name, price, tags, meta, note FROM items WHERE id <= 200 ORDER BY id"
    with conn.cursor(binary=True) as cur:
        cur.execute(query)
        via = cur.fetchall()
        assert cur.pgresult.fformat(0) == 1  # really binary
    with direct.cursor(binary=True) as cur:
        cur.execute(query)
        assert via == cur.fetchall()
    with conn.cursor(binary=True) as cur:
        cur.execute("SELECT %b::bytea, %s::int8, %s::float8", (b"\x00\x01\xff", 2**40, 0.5))
        assert cur.fetchone() == (b"\x00\x01\xff", 2**40, 0.5)


def test_executemany(conn):
    conn.execute("CREATE TEMP TABLE em (id int PRIMARY KEY, label text)")
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO em (id, label) VALUES (%s, %s)",
            [(i, f"label {i}") for i in range(1, 501)],
        )
    assert conn.execute("SELECT count(*), sum(id) FROM em").fetchone() == (500, 125250)
    with conn.cursor() as cur:
        cur.executemany(
            "SELECT %s::int * 2", [(i,) for i in range(5)], returning=True
        )
        got = []
        while True:
            got.append(cur.fetchone()[0])
            if not cur.nextset():
                break
        assert got == [0, 2, 4, 6, 8]


def test_pipeline_mode(conn):
    conn.execute("CREATE TEMP TABLE pl (id int, v text)")
    with conn.pipeline():
        cursors = []
        for i in range(50):
            conn.execute("INSERT INTO pl VALUES (%s, %s)", (i, f"v{i}"))
            cursors.append(conn.execute("SELECT count(*) FROM pl"))
    # Each count saw exactly the inserts before it, in order.
    assert [c.fetchone()[0] for c in cursors] == list(range(1, 51))
    # An error inside a pipeline aborts the rest of that sync block only.
    with pytest.raises(errors.DivisionByZero):
        with conn.pipeline():
            conn.execute("SELECT 1/0")
            conn.execute("SELECT 1")
    conn.rollback()
    assert conn.execute("SELECT 'after'").fetchone() == ("after",)


def test_prepared_statement_reused_many_times(gateway_kwargs):
    with psycopg.connect(**gateway_kwargs, prepare_threshold=0) as conn:
        query = "SELECT id, name FROM items WHERE id = %s"
        for i in range(1, 301):
            assert conn.execute(query, (i,)).fetchone() == (i, f"item {i}")
        # The statement really is a named server-side prepared statement,
        # prepared once on the upstream session and executed 300 times.
        names = conn.execute(
            "SELECT name FROM pg_prepared_statements WHERE statement LIKE %s",
            ("%FROM items WHERE id = $1%",),
        ).fetchall()
        assert len(names) == 1, names
        assert names[0][0].startswith("_pg3_")


def test_copy_out_matches_direct_and_copy_in_round_trips(conn, direct):
    stmt = "COPY (SELECT * FROM items ORDER BY id) TO STDOUT"
    with conn.cursor() as cur, cur.copy(stmt) as copy:
        via = b"".join(bytes(chunk) for chunk in copy)
    with direct.cursor() as cur, cur.copy(stmt) as copy:
        ref = b"".join(bytes(chunk) for chunk in copy)
    assert len(ref) > 100_000
    assert via == ref

    conn.execute("CREATE TEMP TABLE cp (LIKE items)")
    with conn.cursor() as cur, cur.copy("COPY cp FROM STDIN") as copy:
        # Deliberately odd chunk sizes: COPY data is a byte stream.
        for i in range(0, len(ref), 7919):
            copy.write(ref[i : i + 7919])
    with conn.cursor() as cur, cur.copy("COPY (SELECT * FROM cp ORDER BY id) TO STDOUT") as copy:
        back = b"".join(bytes(chunk) for chunk in copy)
    assert back == ref

    # Row-wise binary COPY in.
    conn.execute("CREATE TEMP TABLE cpb (id int, t text, j jsonb)")
    with conn.cursor() as cur:
        with cur.copy("COPY cpb (id, t, j) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int4", "text", "jsonb"])
            for i in range(1000):
                copy.write_row((i, f"row {i}", {"i": i}))
    assert conn.execute("SELECT count(*), sum(id), max((j->>'i')::int) FROM cpb").fetchone() == (
        1000,
        499500,
        999,
    )


def _cancel_while_sleeping(conn, cancel):
    timer = threading.Timer(0.5, cancel)
    timer.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(30)")
    finally:
        timer.cancel()
    took = time.monotonic() - t0
    assert took < 2.5, f"cancel took {took:.2f}s"
    conn.rollback()
    assert conn.execute("SELECT 'still usable'").fetchone() == ("still usable",)


def test_cancel(conn):
    # conn.cancel() uses libpq's PQcancel (a separate CancelRequest connection).
    _cancel_while_sleeping(conn, conn.cancel)


def test_cancel_safe(conn):
    # cancel_safe() uses libpq 17's encrypted cancel API when available.
    if not hasattr(conn, "cancel_safe"):
        pytest.skip("psycopg too old for cancel_safe")
    _cancel_while_sleeping(conn, conn.cancel_safe)


def test_listen_notify(gateway_kwargs, direct):
    with psycopg.connect(**gateway_kwargs, autocommit=True) as listener:
        listener.execute("LISTEN py_channel")
        direct.execute("NOTIFY py_channel, 'payload from direct'")
        got = []
        for n in listener.notifies(timeout=10, stop_after=1):
            got.append((n.channel, n.payload))
        assert got == [("py_channel", "payload from direct")]


def test_wrong_token_is_refused(gateway_kwargs):
    bad = dict(gateway_kwargs, password="slt_wrong")
    with pytest.raises(psycopg.OperationalError) as exc:
        psycopg.connect(**bad)
    assert "password authentication failed" in str(exc.value)


def test_sslnegotiation_direct(gateway_kwargs):
    if psycopg.pq.version() < 170000:
        pytest.skip(f"bundled libpq {psycopg.pq.version()} has no sslnegotiation=direct")
    with psycopg.connect(**gateway_kwargs, sslnegotiation="direct") as c:
        assert c.execute("SELECT 'direct'").fetchone() == ("direct",)
        assert c.pgconn.ssl_in_use


def test_session_state_and_parameter_status(conn):
    # ParameterStatus messages from the upstream reach the driver.
    assert conn.info.parameter_status("server_encoding") == "UTF8"
    conn.execute("SET application_name = 'renamed-by-agent'")
    assert conn.info.parameter_status("application_name") == "renamed-by-agent"
    conn.execute("SET TIME ZONE 'Asia/Tokyo'")
    assert conn.info.parameter_status("TimeZone") == "Asia/Tokyo"
    # Transactions work as usual.
    conn.execute("CREATE TEMP TABLE tx (x int)")
    conn.commit()
    conn.execute("INSERT INTO tx VALUES (1)")
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM tx").fetchone()[0] == 0
    with conn.transaction():
        conn.execute("INSERT INTO tx VALUES (2)")
    assert conn.execute("SELECT sum(x) FROM tx").fetchone()[0] == 2
    q = sql.SQL("SELECT {} FROM items WHERE id = 1").format(sql.Identifier("name"))
    assert conn.execute(q).fetchone() == ("item 1",)
