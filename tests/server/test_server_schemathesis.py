"""Property-based: schemathesis fuzzes every documented endpoint over loopback; nothing may answer 5xx.

The cases come from schemathesis' strategies driven by a plain hypothesis test, not from its
pytest plugin (``from_fixture``), whose reach into pytest internals breaks with each pytest major.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fake_upstream import FakeUpstream  # noqa: E402
from middleware.server import ServerConfig, ServerThread  # noqa: E402

MAX_EXAMPLES = 40


@pytest.fixture(scope="module")
def api_schema():
    with FakeUpstream(record=False) as up:
        config = ServerConfig(model="openai/fake", api_base=up.url, country="ro", language="en", port=0,
                              log_level="critical", timeout=5)
        with ServerThread(config) as server:
            yield schemathesis.openapi.from_url(server.url.removesuffix("/v1") + "/openapi.json")


def _operations(schema):
    return [result.ok() for result in schema.get_all_operations()]


def test_schema_lists_the_proxy_endpoints(api_schema):
    paths = {op.path for op in _operations(api_schema)}
    assert {"/v1/chat/completions", "/v1/models"} <= paths


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_no_server_errors(api_schema, mode):
    from schemathesis import GenerationMode

    # Negative cases too: inputs that break the schema must get 4xx, never 5xx.
    generation = GenerationMode.POSITIVE if mode == "positive" else GenerationMode.NEGATIVE
    strategy = st.one_of([op.as_strategy(generation_mode=generation) for op in _operations(api_schema)])
    seen: list[str] = []

    @settings(max_examples=MAX_EXAMPLES * len(_operations(api_schema)), deadline=None, derandomize=True,
              database=None, suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def check(case):
        response = case.call(timeout=10)
        seen.append(f"{case.method} {case.path}")
        assert response.status_code < 500, f"{case.method} {case.path} -> {response.status_code}: {response.text[:300]}"
        if response.status_code >= 400:
            err = response.json()["error"]
            assert set(err) == {"message", "type", "param", "code"}

    check()
    assert seen, "schemathesis generated no case"
