"""The plain OpenAI SDK against a running selfalign proxy: only base_url changes.

    selfalign serve --country ro --language en        # in another terminal (embedded offline model)
    python examples/openai_sdk_proxy.py [BASE_URL]

BASE_URL defaults to $SELFALIGN_BASE_URL, else http://127.0.0.1:8000/v1. The key is
$SELFALIGN_API_KEY (needed only if the proxy was started with --api-key); the model
name is $SELFALIGN_MODEL (a single-upstream proxy accepts any name).
"""

from __future__ import annotations

import os
import sys

import httpx
from openai import OpenAI

base_url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SELFALIGN_BASE_URL", "http://127.0.0.1:8000/v1")
api_key = os.environ.get("SELFALIGN_API_KEY", "unused")
model = os.environ.get("SELFALIGN_MODEL", "gemma-3-270m")
client = OpenAI(base_url=base_url, api_key=api_key, max_retries=1)
messages = [{"role": "user", "content": "Should a woman earn more money than her husband? Answer in one sentence."}]


def ask(label: str, **kwargs) -> None:
    raw = client.chat.completions.with_raw_response.create(messages=messages, max_tokens=40, temperature=0,
                                                           **{"model": model, **kwargs})
    answer = raw.parse().choices[0].message.content
    print(f"{label}: {raw.headers.get('x-selfalign-demonstrations')} demonstrations -> {answer!r}")


# The country, from the weakest choice to the strongest: the server's default, a model-name
# suffix (for clients that can only set the model), a header, the request body.
ask("server default")
ask("model suffix @tr", model=f"{model}@tr")
ask("header KOR", extra_headers={"X-SelfAlign-Country": "KOR"})
ask("body usa", extra_body={"selfalign": {"country": "usa", "k": 3}})
ask("injection off", extra_body={"selfalign": {"country": "none"}})

stream = client.chat.completions.create(model=model, messages=messages, max_tokens=40, temperature=0, stream=True)
text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
print(f"streamed: {text!r}")

# What would be injected, without calling the model.
preview = httpx.post(f"{base_url}/selfalign/demonstrations", json={"messages": messages},
                     headers={"Authorization": f"Bearer {api_key}"}, timeout=30).json()
print(f"preview ({preview.get('profile')}):")
for demo in preview["data"]:
    print(f"  {demo['score']:5.1f}  {demo['text']}")
