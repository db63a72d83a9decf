"""Connection settings for the psycopg end-to-end tests.

The Rust test tests/e2e_psycopg.rs starts a real PostgreSQL and the real
sluice binary, then runs pytest with these environment variables:

  SLUICE_GW_PORT       gateway port on localhost
  SLUICE_AGENT         agent name, SLUICE_TOKEN its token
  SLUICE_CA            CA certificate that signed the gateway's certificate
  SLUICE_DIRECT_PORT   PostgreSQL's own port, SLUICE_DIRECT_USER/_PASSWORD
"""

import os

import psycopg
import pytest


def _env(name):
    value = os.environ.get(name)
    if not value:
        pytest.skip(f"{name} not set: run through `cargo test --test e2e_psycopg`")
    return value


@pytest.fixture(scope="session")
def gateway_kwargs():
    return dict(
        host="localhost",
        port=int(_env("SLUICE_GW_PORT")),
        dbname="app",
        user=_env("SLUICE_AGENT"),
        password=_env("SLUICE_TOKEN"),
        sslmode="verify-full",
        sslrootcert=_env("SLUICE_CA"),
        connect_timeout=10,
    )


@pytest.fixture(scope="session")
def direct_kwargs():
    return dict(
        host="127.0.0.1",
        port=int(_env("SLUICE_DIRECT_PORT")),
        dbname="app",
        user=_env("SLUICE_DIRECT_USER"),
        password=_env("SLUICE_DIRECT_PASSWORD"),
        sslmode="disable",
        connect_timeout=10,
    )


@pytest.fixture
def conn(gateway_kwargs):
    with psycopg.connect(**gateway_kwargs) as c:
        yield c


@pytest.fixture
def direct(direct_kwargs):
    with psycopg.connect(**direct_kwargs, autocommit=True) as c:
        yield c
