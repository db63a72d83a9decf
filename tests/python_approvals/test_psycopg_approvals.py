"""psycopg 3 against statements held for human approval.

Run by tests/e2e_approvals.rs (psycopg_pipeline_and_transactions), which
starts PostgreSQL and sluice with an admin listener and passes:

  SLUICE_BIN            the sluice binary (its `approvals` CLI decides)
  SLUICE_GW_PORT        gateway port; SLUICE_AGENT / SLUICE_TOKEN; SLUICE_CA
  SLUICE_ADMIN_URL / SLUICE_ADMIN_TOKEN / SLUICE_ADMIN_CA   for the CLI
  SLUICE_DIRECT_PORT / _USER / _PASSWORD   PostgreSQL without sluice

psycopg uses the extended protocol for every execute, so each held
statement here is held at its Execute. A helper thread plays the approver:
it waits for the request to appear in `sluice approvals list --json` and
then approves, denies, or cancels the agent's statement.
"""

import json
import subprocess
import threading
import time

import psycopg
import pytest
from psycopg import errors

import sluice_settings


def gateway():
    return psycopg.connect(**sluice_settings.gateway_kwargs())


def direct(sql):
    with psycopg.connect(**sluice_settings.direct_kwargs(), autocommit=True) as c:
        cur = c.execute(sql)
        return cur.fetchall() if cur.description else None


def scratch(table):
    direct(f"DROP TABLE IF EXISTS {table}")
    direct(f"CREATE TABLE {table} (id int)")
    direct(f"INSERT INTO {table} SELECT generate_series(1, 10)")


def count(table):
    return direct(f"SELECT count(*) FROM {table}")[0][0]


def cli(*args):
    out = subprocess.run(
        [sluice_settings.env("SLUICE_BIN"), "approvals", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, f"sluice approvals {args}: {out.stderr}"
    return out.stdout


def wait_pending(needle, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for view in json.loads(cli("list", "--json"))["approvals"]:
            if needle in view["statement"]:
                return view
        time.sleep(0.05)
    raise AssertionError(f"no pending approval for {needle!r}")


class Approver(threading.Thread):
    """Waits for the request for `needle`, then runs `action(view)`."""

    def __init__(self, needle, action):
        super().__init__(daemon=True)
        self.needle = needle
        self.action = action
        self.error = None
        self.view = None

    def run(self):
        try:
            self.view = wait_pending(self.needle)
            self.action(self.view)
        except BaseException as e:  # reported by finish()
            self.error = e

    def finish(self):
        self.join(30)
        assert not self.is_alive(), "approver thread hung"
        if self.error:
            raise self.error
        return self.view


def test_pipeline_held_statement_runs_once_after_approve():
    scratch("apy_pipe")
    with gateway() as conn:
        conn.autocommit = True
        approver = Approver("apy_pipe", lambda v: cli("approve", v["id"]))
        approver.start()
        with conn.pipeline():
            c1 = conn.execute("SELECT 1")
            c2 = conn.execute("DELETE FROM apy_pipe")
            c3 = conn.execute("SELECT 3")
        approver.finish()
        assert c1.fetchone() == (1,)
        assert c2.rowcount == 10
        assert c3.fetchone() == (3,)
        # Exactly once: the next statement runs on its own, and the data
        # shows one DELETE.
        assert conn.execute("SELECT 7").fetchone() == (7,)
    assert count("apy_pipe") == 0


def test_pipeline_denied_statement_fails_in_place_and_never_runs():
    scratch("apy_deny")
    with gateway() as conn:
        conn.autocommit = True
        approver = Approver("apy_deny", lambda v: cli("deny", v["id"], "--reason", "no"))
        approver.start()
        with pytest.raises(errors.InsufficientPrivilege) as raised:
            with conn.pipeline():
                conn.execute("SELECT 1")
                conn.execute("UPDATE apy_deny SET id = 0")
                conn.execute("INSERT INTO apy_deny VALUES (99)")
        approver.finish()
        assert "denied" in str(raised.value)
        # The session goes on.
        assert conn.execute("SELECT 8").fetchone() == (8,)
    # Neither the UPDATE nor the INSERT after it in the pipeline ran.
    assert direct("SELECT count(*), sum(id) FROM apy_deny")[0] == (10, 55)


def test_transaction_approve_then_commit():
    scratch("apy_tx")
    with gateway() as conn:
        conn.execute("INSERT INTO apy_tx VALUES (100)")
        approver = Approver("apy_tx", lambda v: cli("approve", v["id"]))
        approver.start()
        cur = conn.execute("DELETE FROM apy_tx")
        approver.finish()
        assert cur.rowcount == 11
        conn.commit()
    assert count("apy_tx") == 0


def test_transaction_deny_fails_the_block_and_rolls_back():
    scratch("apy_txd")
    with gateway() as conn:
        conn.execute("INSERT INTO apy_txd VALUES (100)")
        approver = Approver("apy_txd", lambda v: cli("deny", v["id"]))
        approver.start()
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("DELETE FROM apy_txd")
        approver.finish()
        # PostgreSQL itself holds the block as failed.
        with pytest.raises(errors.InFailedSqlTransaction):
            conn.execute("SELECT 1")
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM apy_txd").fetchone() == (10,)
    assert count("apy_txd") == 10


def test_cancel_withdraws_the_request():
    scratch("apy_cancel")
    with gateway() as conn:
        conn.autocommit = True
        approver = Approver("apy_cancel", lambda v: conn.cancel())
        approver.start()
        with pytest.raises(errors.QueryCanceled):
            conn.execute("DELETE FROM apy_cancel")
        view = approver.finish()
        shown = cli("show", view["id"])
        assert "cancelled" in shown, shown
        assert conn.execute("SELECT 9").fetchone() == (9,)
    assert count("apy_cancel") == 10
