"""Fixtures of the psycopg end-to-end tests, run by tests/e2e_psycopg.rs;
the connection settings come from tests/python_common/sluice_settings.py.
"""

import psycopg
import pytest

import sluice_settings


@pytest.fixture(scope="session")
def gateway_kwargs():
    return sluice_settings.gateway_kwargs()


@pytest.fixture(scope="session")
def direct_kwargs():
    return sluice_settings.direct_kwargs()


@pytest.fixture
def conn(gateway_kwargs):
    with psycopg.connect(**gateway_kwargs) as c:
        yield c


@pytest.fixture
def direct(direct_kwargs):
    with psycopg.connect(**direct_kwargs, autocommit=True) as c:
        yield c
