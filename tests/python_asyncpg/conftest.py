"""Helpers of the asyncpg end-to-end tests, run by tests/e2e_asyncpg.rs;
the connection settings come from tests/python_common/sluice_settings.py.

The tests are plain functions that run one coroutine each with
`run(...)` (no pytest plugin needed), and every coroutine is bounded by a
timeout so that a wedged gateway fails the suite instead of hanging it.
"""

import asyncio

import asyncpg

import sluice_settings

# Upper bound on one test's coroutine.
TEST_TIMEOUT_S = 40


def run(coroutine, timeout_s=TEST_TIMEOUT_S):
    """Runs `coroutine` on a fresh event loop, failing after `timeout_s`."""

    async def bounded():
        return await asyncio.wait_for(coroutine, timeout_s)

    return asyncio.run(bounded())


async def gateway(**overrides):
    """A connection of the agent through sluice (TLS, verify-full, token)."""
    kwargs = sluice_settings.asyncpg_gateway_kwargs()
    kwargs.update(overrides)
    return await asyncpg.connect(**kwargs)


async def direct(**overrides):
    """A connection to PostgreSQL itself, for comparisons and setup."""
    kwargs = sluice_settings.asyncpg_direct_kwargs()
    kwargs.update(overrides)
    return await asyncpg.connect(**kwargs)


async def direct_fetch(query, *args):
    """`query`'s rows from PostgreSQL itself, as tuples."""
    conn = await direct()
    try:
        return [tuple(r) for r in await conn.fetch(query, *args)]
    finally:
        await conn.close()
