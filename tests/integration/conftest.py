"""Fixtures every integration test module sees: the per-module Redis server behind
``redis_support.redis_server_fixture`` (which the modules that use it import)."""

from redis_support import redis_module_server  # noqa: F401 - the fixture
