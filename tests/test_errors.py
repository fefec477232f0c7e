"""The one exception tree: every selfalign error in middleware.errors, bad input apart from runtime failures."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import middleware
from middleware import errors
from middleware.errors import (ChatBackendError, ConfigError, InputError, LlamaCppError, ModelCallError, ModelError,
                               PluginError, ProxyError, SelfAlignError, UnknownCountryError)

# The direct children of SelfAlignError that are neither bad input nor a failed model call.
OTHER_BRANCHES = {PluginError, ProxyError}


def _modules():
    for info in pkgutil.walk_packages(middleware.__path__, "middleware."):
        if not info.name.endswith("__main__"):
            yield importlib.import_module(info.name)  # every extra is installed where the suite runs


def test_every_exported_error_is_in_the_tree():
    classes = [getattr(errors, name) for name in errors.__all__]
    assert len(classes) == len(set(classes)) >= 14
    for cls in classes:
        assert issubclass(cls, SelfAlignError), cls
        branches = [issubclass(cls, InputError), issubclass(cls, ModelError),
                    any(issubclass(cls, b) for b in OTHER_BRANCHES)]
        assert cls is SelfAlignError or branches.count(True) == 1, cls
    # Every class of the module is exported: a new error cannot hide from the loop above.
    defined = {c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__}
    assert defined == set(classes)


def test_bad_input_is_a_value_error_and_runtime_failures_are_not():
    for cls in (UnknownCountryError, ConfigError, InputError):
        assert issubclass(cls, ValueError)
    for cls in (ModelError, ChatBackendError, ModelCallError, LlamaCppError):
        assert issubclass(cls, RuntimeError) and not issubclass(cls, ValueError)
    assert not issubclass(SelfAlignError, ValueError)
    assert ModelCallError("x").param == "model" and ConfigError("x").param == "config"
    assert InputError("x", param="k").param == "k" and InputError("x").param is None


def test_every_public_exception_of_the_package_is_in_the_tree_and_defined_there():
    """No module defines an exception of its own: public ones live in middleware.errors (the old homes only
    import them); private control-flow ones (a leading underscore) are the only exceptions to the rule."""
    seen = 0
    for module in _modules():
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if not issubclass(cls, BaseException) or not cls.__module__.startswith("middleware"):
                continue
            seen += 1
            if cls.__name__.startswith("_"):
                continue
            assert issubclass(cls, SelfAlignError), f"{cls.__module__}.{cls.__qualname__} is outside the tree"
            assert cls.__module__ == "middleware.errors", f"{cls.__qualname__} defined in {cls.__module__}"
    assert seen >= len(errors.__all__)
    from middleware.chat import ChatBackendError as chat_error
    from middleware.eval import ModelCallError as eval_error
    from middleware.models.llamacpp import LlamaCppError as llama_error
    from middleware.server import ConfigError as server_error
    from middleware.server.errors import ProxyError as proxy_error

    assert (chat_error, eval_error, server_error, llama_error, proxy_error) == (
        ChatBackendError, ModelCallError, ConfigError, LlamaCppError, ProxyError)


def test_the_proxy_maps_the_branches_apart():
    from middleware.server.errors import from_exception

    bad = from_exception(UnknownCountryError("unknown country 'zz'"))
    assert (bad.status, bad.param, bad.code) == (400, "country", "invalid_country")
    failed = from_exception(ModelCallError("m: boom"))
    assert failed.status == 502 and failed.type == "upstream_error" and "boom" in failed.message
    llama = from_exception(LlamaCppError("llama.cpp: context full"))
    assert llama.status == 502 and "context full" in llama.message
    broken = from_exception(PluginError("the strategy plugin 'x' failed to load"))
    assert broken.status == 500 and broken.code == "plugin_error"
    same = ProxyError(429, "slow down", "rate_limit_error", headers={"Retry-After": "3"})
    assert from_exception(same) is same
    assert same.body() == {"error": {"message": "slow down", "type": "rate_limit_error", "param": None,
                                     "code": None}}


def test_provider_exceptions_are_mapped_by_type_not_by_name():
    """A class that merely shares a provider's class name is not taken for it."""
    openai = pytest.importorskip("openai")
    import httpx

    from middleware.models.provider_errors import carries_answer, is_retryable, is_timeout
    from middleware.server.errors import from_exception

    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    timeout = openai.APITimeoutError(request=request)
    assert is_timeout(timeout) and is_retryable(timeout) and not carries_answer(timeout)
    assert from_exception(timeout).status == 504

    class APITimeoutError(Exception):  # the same name, another type
        status_code = 400

    impostor = APITimeoutError("not a timeout")
    assert not is_timeout(impostor) and not is_retryable(impostor) and carries_answer(impostor)
    assert from_exception(impostor).status == 400


def test_one_retry_after_parser_reads_seconds_dates_and_exceptions():
    from email.utils import formatdate
    import time

    from middleware.models.provider_errors import retry_after, retry_after_seconds

    assert retry_after({"retry-after": " 7 "}) == "7" and retry_after_seconds({"Retry-After": "7"}) == 7.0
    assert retry_after({}) is None and retry_after(None) is None and retry_after_seconds({"Retry-After": "soon"}) is None
    later = retry_after_seconds({"Retry-After": formatdate(time.time() + 30, usegmt=True)})
    assert later is not None and 25 <= later <= 31

    class Limited(Exception):
        headers = {"Retry-After": "2"}

    assert retry_after_seconds(Limited()) == 2.0
