"""The one exception tree: every selfalign error in middleware.errors, bad input apart from runtime failures."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import middleware
from middleware import errors
from middleware.errors import (ChatBackendError, ConfigError, InputError, ModelCallError, ModelError, SelfAlignError,
                               UnknownCountryError)


def test_every_exported_error_is_in_the_tree():
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, SelfAlignError), name
        assert issubclass(cls, InputError) != issubclass(cls, ModelError) or cls is SelfAlignError, name


def test_bad_input_is_a_value_error_and_runtime_failures_are_not():
    for cls in (UnknownCountryError, ConfigError, InputError):
        assert issubclass(cls, ValueError)
    for cls in (ModelError, ChatBackendError, ModelCallError):
        assert issubclass(cls, RuntimeError) and not issubclass(cls, ValueError)
    assert not issubclass(SelfAlignError, ValueError)
    assert ModelCallError("x").param == "model" and ConfigError("x").param == "config"
    assert InputError("x", param="k").param == "k" and InputError("x").param is None


def test_no_module_defines_its_own_selfalign_error():
    """Every SelfAlignError subclass lives in middleware.errors (the old homes only import them)."""
    for info in pkgutil.walk_packages(middleware.__path__, "middleware."):
        if info.name.endswith("__main__"):
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError as e:  # an optional extra that is not installed
            pytest.skip(f"{info.name}: {e}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and issubclass(cls, SelfAlignError):
                assert cls.__module__ == "middleware.errors", f"{cls.__qualname__} defined in {cls.__module__}"
    from middleware.chat import ChatBackendError as chat_error
    from middleware.eval import ModelCallError as eval_error
    from middleware.server import ConfigError as server_error

    assert (chat_error, eval_error, server_error) == (ChatBackendError, ModelCallError, ConfigError)


def test_the_proxy_maps_the_two_branches_apart():
    from middleware.server.errors import from_exception

    bad = from_exception(UnknownCountryError("unknown country 'zz'"))
    assert (bad.status, bad.param) == (400, "country")
    failed = from_exception(ModelCallError("m: boom"))
    assert failed.status == 502 and failed.type == "upstream_error" and "boom" in failed.message
