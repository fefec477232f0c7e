"""Self-align an existing OpenAI client in-process, without running a proxy.

    python examples/wrapped_client.py [BASE_URL] [MODEL]

BASE_URL: any OpenAI-compatible server (default $OPENAI_BASE_URL, else OpenAI itself, which
needs $OPENAI_API_KEY), e.g. http://127.0.0.1:11434/v1 for Ollama. MODEL defaults to
$OPENAI_MODEL, else gpt-4o-mini. The country is $SELFALIGN_COUNTRY (default ro).
"""

from __future__ import annotations

import asyncio
import os
import sys

from openai import AsyncOpenAI, OpenAI

from middleware import wrap_openai

base_url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("OPENAI_BASE_URL")
model = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
api_key = os.environ.get("OPENAI_API_KEY", "unused")
country = os.environ.get("SELFALIGN_COUNTRY", "ro")
messages = [{"role": "user", "content": "Is it ever justifiable to cheat on taxes? Answer in one sentence."}]

# Everything but chat.completions is the original client; language="en": English probes.
client = wrap_openai(OpenAI(base_url=base_url, api_key=api_key), country=country, language="en", k=5)
print("demonstrations:")
for demo in client.aligner.demonstrations(messages[-1]["content"]):
    print(f"  - {demo.text}")

reply = client.chat.completions.create(model=model, messages=messages, max_tokens=60)
print(f"aligned with {country}: {reply.choices[0].message.content!r}")

# One call can choose another country (or "none").
reply = client.chat.completions.create(model=model, messages=messages, max_tokens=60, selfalign={"country": "usa"})
print(f"aligned with usa: {reply.choices[0].message.content!r}")


async def main() -> None:
    aclient = wrap_openai(AsyncOpenAI(base_url=base_url, api_key=api_key), country=country, language="en")
    stream = await aclient.chat.completions.create(model=model, messages=messages, max_tokens=60, stream=True)
    text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
    print(f"async, streamed: {text!r}")


asyncio.run(main())
