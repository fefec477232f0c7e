"""What the server test modules share: the standard request, settings for a proxy in front of the fake
upstream, the SDK client, and the OpenAI error-shape check (fixtures are in conftest.py)."""

from __future__ import annotations

import httpx
import openai

from middleware.server import ServerConfig

USER = [{"role": "user", "content": "Is it justifiable to avoid paying a fare on public transport?"}]
BODY = {"model": "m", "messages": USER}


def make_config(upstream, **kw) -> ServerConfig:
    """A proxy relaying to ``upstream`` (Romania, English demonstrations, quiet logs); ``kw`` overrides."""
    base = dict(model="openai/fake", api_base=upstream.url, country="ro", language="en", port=0, log_level="warning",
                timeout=5.0)
    base.update(kw)
    return ServerConfig(**base)


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
