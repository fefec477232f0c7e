"""Fixtures shared by the integration tests."""

import pytest


@pytest.fixture(autouse=True)
def _fresh_upstream(request):
    """Each test that talks to the fake upstream (tests/conftest.py) starts with no recorded requests or faults."""
    if "upstream" in request.fixturenames:
        request.getfixturevalue("upstream").reset()
    yield
