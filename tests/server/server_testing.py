"""What the server test modules share: the standard request, settings for a proxy in front of the fake
upstream, the SDK client, and the OpenAI error-shape check (fixtures are in conftest.py)."""

from __future__ import annotations

import contextlib
import time
from typing import Iterator

import httpx
import openai

from middleware.server import ServerConfig, ServerThread

USER = [{"role": "user", "content": "Is it justifiable to avoid paying a fare on public transport?"}]
BODY = {"model": "m", "messages": USER}


def make_config(upstream, **kw) -> ServerConfig:
    """A proxy relaying to ``upstream`` (Romania, English demonstrations, quiet logs); ``kw`` overrides."""
    base = dict(model="openai/fake", api_base=upstream.url, country="ro", language="en", port=0, log_level="warning",
                timeout=5.0)
    base.update(kw)
    return ServerConfig(**base)


@contextlib.contextmanager
def embedded_server(model: str | None = None, country: str = "none", load_s: float = 300, **kw) -> Iterator[ServerThread]:
    """A proxy in front of an embedded model (``None``: the chat default), yielded once it has loaded."""
    config = ServerConfig(**({"model": model} if model else {}), country=country, port=0, log_level="warning",
                          timeout=300, **kw)
    with ServerThread(config) as server:
        ready = server.url.removesuffix("/v1") + "/health/readiness"
        deadline = time.monotonic() + load_s  # the first load converts the model
        while httpx.get(ready).status_code != 200:
            assert time.monotonic() < deadline, "the local model did not load"
            time.sleep(0.2)
        yield server


def sdk(server, **kw) -> openai.OpenAI:
    """The openai SDK pointed at ``server``, without retries (a test sees each answer)."""
    return openai.OpenAI(base_url=server.url, api_key="x", max_retries=0, timeout=kw.pop("timeout", 10), **kw)


def assert_openai_error(r: httpx.Response, status: int) -> dict:
    """``r`` has ``status`` and OpenAI's error shape; its ``error`` object."""
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert isinstance(err["message"], str) and err["message"]
    return err
