"""Fixtures of the server tests (helpers they share are in server_testing.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _clean(request):
    """Each test starts with the module's fake upstream forgetting earlier requests and faults."""
    if "upstream" in request.fixturenames:
        request.getfixturevalue("upstream").reset()
    yield
