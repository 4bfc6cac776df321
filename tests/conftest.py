"""Shared pytest configuration: async tests run on asyncio (the loop uvicorn uses)."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
