"""Connection settings shared by the pytest suites (tests/python,
tests/python_approvals and tests/python_asyncpg) and the psycopg clients
of tests/e2e_masking.rs (tests/python_masking).

tests/common/mod.rs (`run_pytest`) starts a real PostgreSQL and the real
sluice binary, puts this folder on PYTHONPATH and passes:

  SLUICE_GW_PORT       gateway port on localhost
  SLUICE_AGENT         agent name, SLUICE_TOKEN its token
  SLUICE_CA            CA certificate that signed the gateway's certificate
  SLUICE_DIRECT_PORT   PostgreSQL's own port, SLUICE_DIRECT_USER/_PASSWORD
"""

import os

import pytest


def env(name):
    """The variable `name`, or a skip when the suite runs outside cargo."""
    value = os.environ.get(name)
    if not value:
        pytest.skip(f"{name} not set: run the suite through its `cargo test`")
    return value


def gateway_kwargs():
    """psycopg.connect arguments for the agent, through sluice over TLS."""
    return dict(
        host="localhost",
        port=int(env("SLUICE_GW_PORT")),
        dbname="app",
        user=env("SLUICE_AGENT"),
        password=env("SLUICE_TOKEN"),
        sslmode="verify-full",
        sslrootcert=env("SLUICE_CA"),
        connect_timeout=10,
    )


def direct_kwargs():
    """psycopg.connect arguments for PostgreSQL itself, without sluice."""
    return dict(
        host="127.0.0.1",
        port=int(env("SLUICE_DIRECT_PORT")),
        dbname="app",
        user=env("SLUICE_DIRECT_USER"),
        password=env("SLUICE_DIRECT_PASSWORD"),
        sslmode="disable",
        connect_timeout=10,
    )


def asyncpg_gateway_kwargs():
    """asyncpg.connect arguments for the agent, through sluice over TLS:
    the token as password (SCRAM), and the gateway's certificate verified
    against the test CA for the host name "localhost" (verify-full)."""
    import ssl

    context = ssl.create_default_context(cafile=env("SLUICE_CA"))
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return dict(
        host="localhost",
        port=int(env("SLUICE_GW_PORT")),
        database="app",
        user=env("SLUICE_AGENT"),
        password=env("SLUICE_TOKEN"),
        ssl=context,
        timeout=10,
        command_timeout=30,
    )


def asyncpg_direct_kwargs():
    """asyncpg.connect arguments for PostgreSQL itself, without sluice."""
    return dict(
        host="127.0.0.1",
        port=int(env("SLUICE_DIRECT_PORT")),
        database="app",
        user=env("SLUICE_DIRECT_USER"),
        password=env("SLUICE_DIRECT_PASSWORD"),
        ssl=False,
        timeout=10,
        command_timeout=30,
    )
