"""asyncpg through sluice, compared with the same statements run directly
against PostgreSQL.

The gateway (tests/e2e_asyncpg.rs) runs the demo policy (DROP, TRUNCATE
and ALTER blocked; reads and writes allowed; server administration
functions held for approval, which without an approval service means
refused) and masking with every detector plus two column rules on
asyncpg_people: `name` masked whole, `amount` sent as NULL. The target
"secret" (the same database) additionally allows administration
functions, for the `pg_sleep` of the cancellation tests. The tables
`items` (5000 rows without sensitive values) and `items_in` (empty) come
from tests/common/mod.rs.
"""

import asyncio
import datetime
import decimal
import json
import time
import uuid

import asyncpg
import pytest

import sluice_settings
from conftest import direct, direct_fetch, gateway, run

ITEMS = "SELECT id, name, price, tags, meta, note FROM items ORDER BY id"
PEOPLE = "SELECT id, name, email, card, notes, docb, amount FROM asyncpg_people ORDER BY id"

# The sensitive values stored in asyncpg_people; none may reach the agent.
ORIGINALS = [
    "Jane Doe",
    "John Smith",
    "jane.doe@example.com",
    "j.smith+ai@mail.example.org",
    "4111 1111 1111 1111",
    "5555555555554444",
    "(212) 555-0199",
]

# What the agent must see for row 1 (same-length styles keep punctuation;
# cards keep their last four digits; the rules mask `name` and null
# `amount`).
MASKED_ROW_1 = (
    1,
    "**** ***",
    "****.***@*******.***",
    "**** **** **** 1111",
    "call (***) ***-**** or mail ****.***@*******.***",
)


def assert_no_originals(what, text):
    for original in ORIGINALS:
        assert original not in text, f"{what}: the agent received {original!r}: {text!r}"


def assert_masked_people(rows):
    """Rows of PEOPLE as the agent must receive them."""
    assert len(rows) == 2
    first = tuple(rows[0])
    assert first[:5] == MASKED_ROW_1, first
    document = json.loads(first[5])  # binary jsonb still decodes as JSON
    assert document["contact"]["email"] == "****.***@*******.***"
    assert document["card"] == "************4444"
    assert first[6] is None, "the column rule sends amount as NULL"
    second = tuple(rows[1])
    assert second[1] == "**** *****"
    assert second[4] == "no pii here, order 12345 shipped 2024-05-01"
    assert json.loads(second[5]) == {"tags": ["a", "b"]}
    assert second[6] is None
    assert_no_originals("rows", repr([tuple(r) for r in rows]))


# --- connect, fetch, prepared statements, codecs, transactions --------------


def test_connect_and_fetch_match_a_direct_connection():
    async def body():
        conn = await gateway()
        try:
            assert await conn.fetchval("SELECT 1") == 1
            assert conn.get_server_version().major == 15
            assert await conn.fetchval("SELECT current_database()") == "app"
            # sluice logs in with its own role, never the agent's name.
            assert await conn.fetchval("SELECT current_user") == sluice_settings.env(
                "SLUICE_DIRECT_USER"
            )
            rows = [tuple(r) for r in await conn.fetch(ITEMS)]
        finally:
            await conn.close()
        assert len(rows) == 5000
        assert rows == await direct_fetch(ITEMS)

    run(body())


def test_prepared_statements_reused_many_times():
    query = "SELECT id, name, price, tags, meta, note FROM items WHERE id = $1"

    async def body():
        expected = {r[0]: r for r in await direct_fetch(ITEMS)}
        conn = await gateway()
        try:
            statement = await conn.prepare(query)
            for i in range(1, 401):
                assert tuple(await statement.fetchrow(i)) == expected[i]
            # The same text through the connection's statement cache: one
            # Parse and Describe, then Bind and Execute only.
            for i in range(401, 801):
                assert tuple(await conn.fetchrow(query, i)) == expected[i]
            assert await statement.fetchval(5000, column=1) == "item 5000"
        finally:
            await conn.close()

    run(body())


# Values whose binary encoding contains text that a detector would find
# (an IPv4 address inside an int8, a phone number inside a uuid, a card
# number's digits inside a float8's bytes would not be text): binary
# values of non-text types must reach the agent exactly as PostgreSQL sent
# them, never scanned as if they were text.
INT8_SPELLING_AN_IP = int.from_bytes(b"10.0.0.1", "big")
UUID_SPELLING_A_PHONE = uuid.UUID(bytes=b"(212) 555-0199 x")

CODECS = [
    ("int2", -32768),
    ("int4", 2147483647),
    ("int8", INT8_SPELLING_AN_IP),
    ("numeric", decimal.Decimal("-12345678901234567890.123456789")),
    ("numeric", decimal.Decimal("NaN")),
    ("float8", 3.141592653589793),
    ("bool", True),
    ("text", "naïve café ✓ \t \"quoted\" \\ back"),
    ("varchar", "plain varchar"),
    ("bytea", b"\x00\x01binary\xff"),
    ("date", datetime.date(2024, 2, 29)),
    (
        "timestamptz",
        datetime.datetime(2024, 5, 1, 12, 34, 56, 789012, tzinfo=datetime.timezone.utc),
    ),
    ("timestamp", datetime.datetime(1999, 12, 31, 23, 59, 59, 999999)),
    ("interval", datetime.timedelta(days=3, seconds=7, microseconds=5)),
    ("uuid", UUID_SPELLING_A_PHONE),
    ("jsonb", json.dumps({"nested": {"list": [1, 2, None], "s": "ü"}}, separators=(",", ":"))),
    ("json", '{"a": [1, 2]}'),
    ("int4[]", [1, None, 3]),
    ("text[]", ["a", None, "c,d", "\"q\""]),
    ("numeric[]", [decimal.Decimal("1.5"), decimal.Decimal("-2")]),
]


def test_binary_codecs_round_trip_like_a_direct_connection():
    query = "SELECT " + ", ".join(f"${i + 1}::{t}" for i, (t, _) in enumerate(CODECS))
    values = [v for _, v in CODECS]

    async def body():
        conn = await gateway()
        try:
            through = tuple(await conn.fetchrow(query, *values))
            # Again from the statement cache (Bind without Describe).
            again = tuple(await conn.fetchrow(query, *values))
        finally:
            await conn.close()
        d = await direct()
        try:
            straight = tuple(await d.fetchrow(query, *values))
        finally:
            await d.close()
        # NaN is not equal to itself: compare its text.
        def comparable(row):
            return tuple(str(v) if isinstance(v, decimal.Decimal) else v for v in row)

        assert comparable(through) == comparable(straight)
        assert comparable(again) == comparable(straight)
        for (type_name, sent), got in zip(CODECS, through):
            if type_name == "jsonb":
                assert json.loads(got) == json.loads(sent)
            elif isinstance(sent, decimal.Decimal) and sent.is_nan():
                assert got.is_nan()
            else:
                assert got == sent, type_name

    run(body())


def test_transactions_commit_roll_back_and_nest():
    async def body():
        conn = await gateway()
        try:
            await conn.execute("CREATE TEMP TABLE tx_probe (id int PRIMARY KEY, v text)")
            async with conn.transaction():
                await conn.execute("INSERT INTO tx_probe VALUES ($1, $2)", 1, "kept")
            with pytest.raises(RuntimeError):
                async with conn.transaction():
                    await conn.execute("INSERT INTO tx_probe VALUES ($1, $2)", 2, "rolled back")
                    raise RuntimeError("abort the block")
            async with conn.transaction():
                await conn.execute("INSERT INTO tx_probe VALUES ($1, $2)", 3, "outer")
                with pytest.raises(RuntimeError):
                    async with conn.transaction():  # a savepoint
                        await conn.execute("INSERT INTO tx_probe VALUES ($1, $2)", 4, "inner")
                        raise RuntimeError("roll back to the savepoint")
            with pytest.raises(asyncpg.UniqueViolationError):
                async with conn.transaction():
                    await conn.execute("INSERT INTO tx_probe VALUES ($1, $2)", 5, "dup")
                    await conn.execute("INSERT INTO tx_probe VALUES ($1, $2)", 1, "dup")
            async with conn.transaction(isolation="serializable", readonly=True):
                assert await conn.fetchval("SELECT count(*) FROM tx_probe") == 2
            assert [r["id"] for r in await conn.fetch("SELECT id FROM tx_probe ORDER BY id")] == [1, 3]
            assert not conn.is_in_transaction()
        finally:
            await conn.close()

    run(body())


# --- cursors: portals with row limits ----------------------------------------


def test_cursors_with_prefetch_match_a_direct_connection():
    async def body():
        expected = await direct_fetch(ITEMS)
        conn = await gateway()
        try:
            async with conn.transaction():
                # Each batch of 37 rows is an Execute with a row limit
                # answered by PortalSuspended.
                got = [tuple(r) async for r in conn.cursor(ITEMS, prefetch=37)]
            assert got == expected
            async with conn.transaction():
                cursor = await conn.cursor(ITEMS)
                first = [tuple(r) for r in await cursor.fetch(100)]
                assert await cursor.forward(400) == 400
                row = tuple(await cursor.fetchrow())
                rest = [tuple(r) for r in await cursor.fetch(10)]
            assert first == expected[:100]
            assert row == expected[500]
            assert rest == expected[501:511]
        finally:
            await conn.close()

    run(body())


def test_interleaved_cursors_keep_their_own_shapes():
    """Two portals of different shapes fetched in turn, one row per
    Execute: the masked one stays masked, the other stays intact."""

    async def body():
        expected_items = await direct_fetch(ITEMS + " LIMIT 6")
        conn = await gateway()
        try:
            async with conn.transaction():
                people = await conn.cursor(PEOPLE)
                items = await conn.cursor(ITEMS)
                got_people, got_items = [], []
                for _ in range(2):
                    got_people.extend(await people.fetch(1))
                    got_items.extend(tuple(r) for r in await items.fetch(3))
            assert_masked_people(got_people)
            assert got_items == expected_items
            async with conn.transaction():
                rows = [r async for r in conn.cursor(PEOPLE, prefetch=1)]
            assert_masked_people(rows)
        finally:
            await conn.close()

    run(body())


# --- executemany (pipelined) ---------------------------------------------------


def test_executemany_with_many_rows():
    rows = [(i, f"name {i}", decimal.Decimal(i) / 4, json.dumps({"i": i})) for i in range(20000)]

    async def body():
        conn = await gateway()
        try:
            await conn.execute(
                "CREATE TEMP TABLE many (id int PRIMARY KEY, name text, price numeric, meta jsonb)"
            )
            await conn.executemany("INSERT INTO many VALUES ($1, $2, $3, $4)", rows)
            count, total, last = await conn.fetchrow(
                "SELECT count(*), sum(price), max(meta->>'i') FILTER (WHERE id = 19999) FROM many"
            )
            assert count == 20000
            assert total == sum(r[2] for r in rows)
            assert last == "19999"
            # executemany is atomic: a duplicate in the middle inserts nothing.
            with pytest.raises(asyncpg.UniqueViolationError):
                await conn.executemany(
                    "INSERT INTO many VALUES ($1, $2, $3, $4)",
                    [(30000, "a", 1, "{}"), (5, "dup", 1, "{}"), (30001, "b", 1, "{}")],
                )
            assert await conn.fetchval("SELECT count(*) FROM many") == 20000
        finally:
            await conn.close()

    run(body())


# --- policy --------------------------------------------------------------------


def test_blocked_statements_raise_42501_and_the_connection_stays_usable():
    async def body():
        conn = await gateway()
        try:
            cached = "SELECT count(*) FROM items WHERE id <= $1"
            assert await conn.fetchval(cached, 10) == 10
            # Simple protocol (execute without arguments).
            with pytest.raises(asyncpg.InsufficientPrivilegeError) as error:
                await conn.execute("TRUNCATE items")
            assert error.value.sqlstate == "42501"
            assert "not allowed through sluice" in str(error.value)
            # Extended protocol: prepared (Parse and Describe pass), refused
            # at Execute, every time; the statement cache is not confused.
            for _ in range(3):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.fetch("DROP TABLE items")
                assert await conn.fetchval(cached, 20) == 20
            statement = await conn.prepare("ALTER TABLE items ADD COLUMN sneaky int")
            for _ in range(2):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await statement.fetch()
            # Inside a transaction the block fails it, as PostgreSQL would.
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                async with conn.transaction():
                    await conn.execute("INSERT INTO items_in (id) VALUES (777001)")
                    await conn.execute("DROP TABLE items_in")
            assert not conn.is_in_transaction()
            assert await conn.fetchval(cached, 30) == 30
            assert await conn.fetchval("SELECT count(*) FROM items_in WHERE id = 777001") == 0
        finally:
            await conn.close()
        # Nothing blocked reached PostgreSQL.
        assert await direct_fetch("SELECT count(*) FROM items") == [(5000,)]
        columns = await direct_fetch(
            "SELECT count(*) FROM information_schema.columns "
            "WHERE table_name = 'items' AND column_name = 'sneaky'"
        )
        assert columns == [(0,)]

    run(body())


# --- masking ---------------------------------------------------------------


def test_masked_columns_in_binary_rows_text_and_jsonb():
    async def body():
        straight = await direct_fetch(PEOPLE)
        assert straight[0][1] == "Jane Doe" and straight[0][2] == "jane.doe@example.com"
        assert straight[0][6] == 4111111111111111
        conn = await gateway()
        try:
            # Prepared and described once, then bound without a Describe
            # (the statement cache) several times.
            for _ in range(3):
                assert_masked_people(await conn.fetch(PEOPLE))
            statement = await conn.prepare(
                "SELECT name, email, amount, docb FROM asyncpg_people WHERE id = $1"
            )
            for _ in range(5):
                name, email, amount, document = await statement.fetchrow(1)
                assert (name, email, amount) == ("**** ***", "****.***@*******.***", None)
                assert json.loads(document)["contact"]["email"] == "****.***@*******.***"
            # A result that needs no masking next to a masked one.
            assert await conn.fetchval("SELECT name FROM items WHERE id = 7") == "item 7"
        finally:
            await conn.close()

    run(body())


def test_masking_without_a_statement_cache_and_in_errors():
    """statement_cache_size=0: every query is the unnamed statement, parsed
    and described each time. Error messages echo input values: masked."""

    async def body():
        conn = await gateway(statement_cache_size=0)
        try:
            for _ in range(3):
                assert_masked_people(await conn.fetch(PEOPLE))
            with pytest.raises(asyncpg.InvalidTextRepresentationError) as error:
                await conn.fetchval("SELECT $1::text::integer", "card 4111 1111 1111 1111")
            assert "4111 1111 1111 1111" not in str(error.value)
            assert "**** **** **** 1111" in str(error.value)
            assert await conn.fetchval("SELECT name FROM asyncpg_people WHERE id = 2") == "**** *****"
        finally:
            await conn.close()

    run(body())


def test_copy_from_query_output_is_masked():
    async def body():
        conn = await gateway()
        try:
            outputs = {}
            for copy_format in ("text", "csv", "binary"):
                chunks = []

                async def sink(data, chunks=chunks):
                    chunks.append(bytes(data))

                status = await conn.copy_from_query(
                    PEOPLE, output=sink, format=copy_format
                )
                assert status == "COPY 2"
                outputs[copy_format] = b"".join(chunks)
            # The connection still works after COPY.
            assert await conn.fetchval("SELECT 1") == 1
        finally:
            await conn.close()
        d = await direct()
        try:
            originals = []
            await d.copy_from_query(PEOPLE, output=lambda b: _append(originals, b), format="text")
        finally:
            await d.close()
        assert b"jane.doe@example.com" in b"".join(originals)
        for copy_format, data in outputs.items():
            assert_no_originals(f"COPY {copy_format}", data.decode("utf-8", "replace"))
            assert b"****.***@*******.***" in data, (copy_format, data)
        assert outputs["text"].count(b"\n") == 2
        assert outputs["binary"].startswith(b"PGCOPY\n\xff\r\n\x00"), outputs["binary"][:16]

    run(body())


async def _append(chunks, data):
    chunks.append(bytes(data))


def test_notify_payloads_are_masked():
    payload = "card 4111 1111 1111 1111 mail jane.doe@example.com"

    async def body():
        received = asyncio.Queue()
        straight_received = asyncio.Queue()
        conn = await gateway()
        d = await direct()
        try:
            await conn.add_listener("asyncpg_channel", lambda *a: received.put_nowait(a[3]))
            await d.add_listener("asyncpg_channel", lambda *a: straight_received.put_nowait(a[3]))
            await d.execute("SELECT pg_notify('asyncpg_channel', $1)", payload)
            got = await asyncio.wait_for(received.get(), 10)
            straight = await asyncio.wait_for(straight_received.get(), 10)
            assert straight == payload
            assert got == "card **** **** **** 1111 mail ****.***@*******.***"
            # Notified by the agent itself, through sluice.
            await conn.execute("NOTIFY asyncpg_channel, 'from the agent: jane.doe@example.com'")
            got = await asyncio.wait_for(received.get(), 10)
            assert got == "from the agent: ****.***@*******.***"
        finally:
            await conn.close()
            await d.close()

    run(body())


# --- cancellation ---------------------------------------------------------------

SLEEP = "SELECT pg_sleep(20)"


async def sleeping_backends():
    rows = await direct_fetch(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = $1", SLEEP
    )
    return rows[0][0]


def test_pg_sleep_is_refused_by_the_demo_policy_on_app():
    async def body():
        conn = await gateway()
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError) as error:
                await conn.fetchval("SELECT pg_sleep(0)")
            assert "approve-admin" in str(error.value)
            assert await conn.fetchval("SELECT 1") == 1
        finally:
            await conn.close()

    run(body())


def test_type_introspection_passes_the_demo_policy():
    """asyncpg introspects types it has no built-in codec for (enums,
    domains, composites) between set_config('jit', 'off') and
    set_config('jit', <previous>): plain session settings."""

    async def body():
        conn = await gateway()
        try:
            mood = await conn.fetchval("SELECT 'happy'::asyncpg_mood")
            assert mood == "happy"
            moods = await conn.fetchval("SELECT ARRAY['sad', 'happy']::asyncpg_mood[]")
            assert moods == ["sad", "happy"]
            assert await conn.fetchval("SHOW jit") == await direct_fetch_value("SHOW jit")
        finally:
            await conn.close()

    run(body())


async def direct_fetch_value(query):
    return (await direct_fetch(query))[0][0]


def test_timeout_cancels_through_sluice_and_the_connection_recovers():
    async def body():
        conn = await gateway(database="secret")
        try:
            started = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):
                await conn.fetchval(SLEEP, timeout=1)
            # asyncpg waits for its CancelRequest before the next statement.
            assert await conn.fetchval("SELECT 42") == 42
            elapsed = time.monotonic() - started
            assert elapsed < 6, f"cancel took {elapsed:.1f} s"
            assert await sleeping_backends() == 0
            assert tuple(await conn.fetchrow("SELECT id, name FROM items WHERE id = $1", 3)) == (
                3,
                "item 3",
            )
        finally:
            await conn.close()

    run(body())


def test_pool_recovers_after_a_cancelled_statement():
    async def body():
        kwargs = sluice_settings.asyncpg_gateway_kwargs()
        kwargs["database"] = "secret"
        pool = await asyncpg.create_pool(min_size=1, max_size=2, **kwargs)
        try:
            async with pool.acquire() as conn:
                started = time.monotonic()
                with pytest.raises(asyncio.TimeoutError):
                    await conn.fetchval(SLEEP, timeout=1)
            # Released (and reset) after the cancel; the pool serves again.
            async with pool.acquire() as conn:
                assert await conn.fetchval("SELECT count(*) FROM items") == 5000
            assert time.monotonic() - started < 6
            results = await asyncio.gather(
                *(pool.fetchval("SELECT $1::int * 2", i) for i in range(20))
            )
            assert results == [i * 2 for i in range(20)]
            assert await sleeping_backends() == 0
        finally:
            await asyncio.wait_for(pool.close(), 10)

    run(body())


def test_pool_release_resets_connections_under_the_demo_policy():
    """Releasing a connection runs asyncpg's reset (advisory unlock, CLOSE
    ALL, UNLISTEN *, RESET ALL) on target "app", under the demo policy."""

    async def body():
        pool = await asyncpg.create_pool(
            min_size=1, max_size=1, **sluice_settings.asyncpg_gateway_kwargs()
        )
        try:
            for round in range(3):
                # asyncpg warns that it releases a connection with a
                # listener: the reset's UNLISTEN * is what this checks.
                with pytest.warns(asyncpg.exceptions.InterfaceWarning):
                    async with pool.acquire() as conn:
                        await conn.add_listener("asyncpg_pool", lambda *a: None)
                        await conn.execute("SET application_name = 'pool round'")
                        assert await conn.fetchval("SELECT count(*) FROM items") == 5000
                async with pool.acquire() as conn:
                    # The reset undid the setting and the listener.
                    assert await conn.fetchval("SHOW application_name") != "pool round", round
                    assert await conn.fetch("SELECT pg_listening_channels()") == []
        finally:
            await asyncio.wait_for(pool.close(), 10)

    run(body())


# --- COPY IN -----------------------------------------------------------------------


def test_copy_records_to_table_binary_copy_in():
    records = [
        (900000 + i, f"copied {i} ✓", decimal.Decimal(i) / 4, ["x", None, str(i)], json.dumps({"i": i}), None if i % 3 == 0 else "n")
        for i in range(2000)
    ]

    async def body():
        d = await direct()
        try:
            await d.execute("DELETE FROM items_in WHERE id >= 900000")
            conn = await gateway()
            try:
                status = await conn.copy_records_to_table("items_in", records=records)
                assert status == "COPY 2000"
                assert await conn.fetchval("SELECT 1") == 1
            finally:
                await conn.close()
            got = [
                tuple(r)
                for r in await d.fetch(
                    "SELECT id, name, price, tags, meta, note FROM items_in "
                    "WHERE id >= 900000 ORDER BY id"
                )
            ]
            assert [(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5]) for r in got] == [
                (r[0], r[1], r[2], r[3], json.loads(r[4]), r[5]) for r in records
            ]
        finally:
            await d.execute("DELETE FROM items_in WHERE id >= 900000")
            await d.close()

    run(body())
