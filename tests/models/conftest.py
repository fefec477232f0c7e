"""Fixtures shared by the model tests."""

import pytest


@pytest.fixture(scope="module")
def litellm():
    """litellm, with the in-process ``local/`` provider registered."""
    from middleware.models.provider import import_litellm

    return import_litellm()
