"""The LiteLLM Proxy pre-call hook, called the way the proxy calls it."""

from __future__ import annotations

import pytest

from middleware.integrations.litellm_callback import SelfAlignCallback, selfalign_callback

USER = [{"role": "user", "content": "Do you think that homosexuality is ever justifiable?"}]


def key(metadata=None):
    from litellm.proxy._types import UserAPIKeyAuth

    return UserAPIKeyAuth(api_key="sk-test", metadata=metadata or {})


async def hook(cb, data, metadata=None, call_type="acompletion"):
    return await cb.async_pre_call_hook(user_api_key_dict=key(metadata), cache=None, data=data, call_type=call_type)


def system(data) -> str | None:
    first = data["messages"][0]
    return first["content"] if first["role"] == "system" else None


def test_resolvable_like_litellm_resolves_config_callbacks():
    from litellm.integrations.custom_logger import CustomLogger
    from litellm.proxy.types_utils.utils import get_instance_fn

    loaded = get_instance_fn("middleware.litellm_callback.selfalign_callback")
    assert loaded is selfalign_callback and isinstance(loaded, CustomLogger)
    # LiteLLM runs only hooks a class defines itself.
    assert "async_pre_call_hook" in vars(SelfAlignCallback)


async def test_default_country_and_metadata_count():
    cb = SelfAlignCallback(country="ro", language="en", min_relevance=0)
    data = await hook(cb, {"model": "m", "messages": list(USER), "metadata": {}})
    assert "Romania" in system(data) and system(data).count("\n- ") == 5
    assert data["messages"][1:] == USER
    assert data["metadata"]["selfalign_demonstrations"] == 5


async def test_env_default(monkeypatch):
    monkeypatch.setenv("SELFALIGN_COUNTRY", "usa")
    data = await hook(SelfAlignCallback(), {"messages": list(USER)})
    assert "United States" in system(data)
    monkeypatch.delenv("SELFALIGN_COUNTRY")
    data = await hook(SelfAlignCallback(), {"messages": list(USER)})
    assert data["messages"] == USER  # no country anywhere: nothing injected


async def test_precedence_body_metadata_key_default():
    cb = SelfAlignCallback(country="ro", language="en")
    data = {"messages": list(USER), "selfalign": {"country": "tr"}, "metadata": {"selfalign_country": "kor"}}
    out = await hook(cb, data, metadata={"selfalign_country": "usa"})
    assert "selfalign" not in out and "Korea" not in system(out) and "United States" not in system(out)
    out = await hook(cb, {"messages": list(USER), "metadata": {"selfalign_country": "kor"}},
                     metadata={"selfalign_country": "usa"})
    assert "Korea" in system(out)
    out = await hook(cb, {"messages": list(USER), "metadata": {}},
                     metadata={"selfalign": {"country": "usa", "k": 2, "min_relevance": 0}})
    assert "United States" in system(out) and system(out).count("\n- ") == 2


async def test_country_none_and_non_chat_calls():
    cb = SelfAlignCallback(country="ro", language="en")
    out = await hook(cb, {"messages": list(USER), "metadata": {"selfalign_country": "none"}})
    assert out["messages"] == USER and out["metadata"]["selfalign_demonstrations"] == 0
    embedding = {"model": "e", "input": ["text"]}
    assert await hook(cb, dict(embedding), call_type="aembedding") == embedding


async def test_registered_profiles_only(tmp_path):
    path = tmp_path / "me.yaml"
    path.write_text("statements:\n  - text: I believe family comes before work.\n")
    cb = SelfAlignCallback(profiles={"me": path})
    out = await hook(cb, {"messages": list(USER), "selfalign": {"profile": "me"}})
    assert "family comes before work" in system(out)


@pytest.mark.parametrize("bad", [{"selfalign": {"country": "Atlantis"}}, {"selfalign": {"profile": "/etc/passwd"}},
                                 {"selfalign": {"k": 0, "country": "ro"}}, {"selfalign": "ro"}])
async def test_bad_choices_are_400(bad):
    from fastapi import HTTPException

    with pytest.raises(HTTPException) as e:
        await hook(SelfAlignCallback(language="en"), {"messages": list(USER), **bad})
    assert e.value.status_code == 400


async def test_relevance_is_reported_in_metadata():
    cb = SelfAlignCallback(country="ro")
    coding = [{"role": "user", "content": "Write a Python function that sorts a list of numbers."}]
    out = await hook(cb, {"messages": list(coding), "metadata": {}})
    assert out["messages"] == coding and out["metadata"]["selfalign_demonstrations"] == 0
    r = out["metadata"]["selfalign_relevance"]
    assert list(r) == ["inject", "score", "threshold", "reason"] and r["inject"] is False
    assert r["reason"] == "not about values" and r["score"] < r["threshold"]
    taxes = [{"role": "user", "content": "Do you think that euthanasia is ever justifiable?"}]
    out = await hook(cb, {"messages": list(taxes), "metadata": {}})
    assert out["metadata"]["selfalign_relevance"]["inject"] is True
    assert 1 <= out["metadata"]["selfalign_demonstrations"] == system(out).count("\n- ")
    off = await hook(cb, {"messages": list(taxes), "metadata": {"selfalign_country": "none"}})
    assert off["metadata"]["selfalign_relevance"]["inject"] is False
