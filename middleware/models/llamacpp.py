"""The llama.cpp runtime: GGUF models through ``xllamacpp`` (prebuilt llama.cpp, no compiler).

It loads a GGUF file in about a second at a few hundred MB, decodes with
llama.cpp's own sampler, chat template and stop-string handling, and keeps the
KV cache of the last prompt: scoring several options after one long prompt
evaluates the shared prefix once.

xllamacpp embeds llama.cpp's server.  Generation goes through its in-process
``handle_completions``; tokenising goes through the server's loopback HTTP
endpoint, guarded by a random API key.  Its logs are switched off
(``verbosity = -1``): nothing reaches our stdout or stderr.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import threading
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from ..errors import LlamaCppError
from .._paths import cache_dir as default_cache_dir
from .decoding import Completion, Penalties, StreamChunk, plain_chat_prompt, plain_messages
from .registry import EMBEDDED, gguf_path
from .runtime import Runtime, option_tokens, spinner

__all__ = ["LlamaCppModel", "LlamaCppError", "default_threads", "default_batch_threads"]

N_CTX = 4096
# Large enough to force the wanted token under greedy sampling, whatever the logits.
_FORCE_BIAS = 1000.0
_TOP = 20
# Plain temperature/top-p sampling with only the penalties asked for, as in the transformers
# runtime: llama.cpp's server defaults (top_k 40, min_p 0.05) would otherwise apply on top.
_SAMPLING = {"top_k": 0, "min_p": 0.0, "typical_p": 1.0, **Penalties().llamacpp()}


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _env_threads() -> int | None:
    env = os.environ.get("SELFALIGN_THREADS", "").strip()
    return int(env) if env.isdigit() and int(env) > 0 else None


def default_threads() -> int:
    """Decode threads: ``$SELFALIGN_THREADS``, else half the usable cores (at least 1, at most 4).

    A 100M-parameter model gains little from more threads, and llama.cpp's threads wait for
    each other at every layer: on busy cores two threads ran 5 tokens/s where one ran 45.
    """
    return _env_threads() or max(1, min(_usable_cores() // 2, 4))


def default_batch_threads() -> int:
    """Prompt-evaluation threads: ``$SELFALIGN_THREADS``, else every usable core (at most 8).

    A prompt is one large matrix product per layer, which splits well: on 2 cores a 300-token
    prompt took 0.68 s with two threads and 1.20 s with one.  The evaluator's exact mode is
    almost all prompt evaluation.
    """
    return _env_threads() or max(1, min(_usable_cores(), 8))


_GGUF_SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}  # type -> bytes
_GGUF_STRING, _GGUF_ARRAY = 8, 9


def _has_chat_template(path: Path) -> bool:
    """Whether the GGUF header holds ``tokenizer.chat_template`` (a base model has none, and then
    llama.cpp would silently fall back to ChatML).  A minimal header walk: gguf's reader takes
    seconds on a large vocabulary."""
    import struct

    with open(path, "rb") as f:
        def u(fmt: str):
            size = struct.calcsize(fmt)
            return struct.unpack("<" + fmt, f.read(size))[0]

        def skip(vtype: int) -> None:
            if vtype == _GGUF_STRING:
                f.seek(u("Q"), 1)
            elif vtype == _GGUF_ARRAY:
                etype, count = u("I"), u("Q")
                if etype in _GGUF_SCALAR:
                    f.seek(_GGUF_SCALAR[etype] * count, 1)
                else:
                    for _ in range(count):
                        skip(etype)
            else:
                f.seek(_GGUF_SCALAR[vtype], 1)

        if f.read(4) != b"GGUF":
            raise ValueError(f"not a GGUF file: {path}")
        u("I")  # version
        u("Q")  # tensor count
        for _ in range(u("Q")):
            key = f.read(u("Q")).decode("utf-8", "replace")
            if key == "tokenizer.chat_template":
                return True
            skip(u("I"))
    return False


class LlamaCppModel(Runtime):
    """A GGUF model served by an in-process llama.cpp (one slot, prompt cache on)."""

    runtime = "llamacpp"

    supports_logprobs = True

    def __init__(self, server: Any, path: Path, name: str, key: str, chat_template: bool,
                 n_ctx: int = N_CTX):
        self._server = server
        self._key = key
        self.path = path
        self.name = name
        self.n_ctx = n_ctx
        self.chat_template = chat_template
        self.forward_passes = 0
        self._count_lock = threading.Lock()

    @classmethod
    def load(cls, name: str, cache_dir: str | os.PathLike | None = None, progress: bool = True,
             n_ctx: int = N_CTX, threads: int | None = None, precision: str | None = None) -> "LlamaCppModel":
        """Load an embedded model by name (see :mod:`~middleware.models.registry`) or a ``.gguf`` file;
        ``precision`` (``f16``/``f32``) loads a de-quantised copy (:mod:`~middleware.models.dequantize`)."""
        import xllamacpp as xlc

        cache = Path(cache_dir or default_cache_dir())
        path = gguf_path(name, cache)
        if precision:
            from .dequantize import dequantized_gguf

            path = dequantized_gguf(path, precision, cache, progress)
        entry = EMBEDDED.get(name)
        chat_template = entry.instruct if entry else _has_chat_template(path)
        key = secrets.token_hex(16)
        params = xlc.CommonParams()
        params.model.path = str(path)
        params.n_ctx = n_ctx
        params.n_parallel = 1  # one slot: its KV cache holds the last prompt for prefix reuse
        # Gemma 3's sliding-window layers otherwise keep too little KV to reuse a shared prefix
        # (measured: 21 of 144 tokens reused with it, none without).
        params.swa_full = True
        params.cpuparams.n_threads = threads or default_threads()
        params.cpuparams_batch.n_threads = threads or default_batch_threads()
        params.verbosity = -1  # llama.cpp logs nothing
        params.warmup = False  # a warm-up decode costs more than it saves for a 100M model
        params.api_keys = [key]  # its loopback HTTP endpoint answers only us
        with spinner(f"Loading {name} ...", progress):
            server = xlc.Server(params)
        return cls(server, path, name, key, chat_template, n_ctx)

    # ----------------------------------------------------------------- plumbing

    def _http(self, endpoint: str, body: dict) -> Any:
        req = urllib.request.Request(self._server.listening_address + endpoint, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {self._key}"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())

    def _complete(self, body: dict, callback: Callable[[dict], bool] | None = None) -> dict | None:
        with self._count_lock:
            self.forward_passes += 1
        body = {**_SAMPLING, "cache_prompt": True, **body}
        if callback is None:
            result = self._server.handle_completions(body)
        else:
            result = self._server.handle_completions({**body, "stream": True}, callback)
        if isinstance(result, dict) and "error" in result:
            raise LlamaCppError(f"llama.cpp: {result['error'].get('message', result['error'])}")
        return result

    def tokenize(self, text: str, special: bool = True) -> list[int]:
        """Token ids of ``text``; ``special`` adds BOS where the model wants one.
        Special-token text (``<|im_start|>``) is parsed as the special token."""
        return self._http("/tokenize", {"content": text, "add_special": special,
                                        "parse_special": True})["tokens"]

    def _prompt_ids(self, prompt: str, max_tokens: int) -> tuple[list[int], int]:
        """Prompt ids cut from the left to leave room for ``max_tokens`` (as the torch runtime does)."""
        ids = self.tokenize(prompt)
        max_tokens = max(0, min(max_tokens, self.n_ctx - 1))
        if len(ids) + max_tokens > self.n_ctx:
            ids = ids[-max(1, self.n_ctx - max_tokens):]
        return ids, max_tokens

    @staticmethod
    def _body(ids: list[int], max_tokens: int, temperature: float, top_p: float,
              stop: Iterable[str] | str | None, seed: int | None, penalties: Penalties | None) -> dict:
        stops = [stop] if isinstance(stop, str) else [s for s in (stop or []) if s]
        body = {"prompt": ids, "max_tokens": max_tokens, "temperature": max(0.0, float(temperature)),
                "top_p": float(top_p), "stop": stops, **(penalties or Penalties()).llamacpp()}
        if seed is not None:
            body["seed"] = int(seed) & 0xFFFFFFFF
        return body

    # ----------------------------------------------------------------- Runtime

    def format_chat(self, messages: Sequence[dict]) -> tuple[str, list[str]]:
        if not self.chat_template:
            return plain_chat_prompt(messages)
        prompt = self._http("/apply-template", {"messages": plain_messages(messages)})["prompt"]
        return prompt, []

    def sampling_defaults(self) -> tuple[float, float]:
        entry = EMBEDDED.get(self.name)
        return (entry.temperature, entry.top_p) if entry else (1.0, 1.0)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text, special=False))

    def generate(self, prompt: str, max_tokens: int = 128, temperature: float = 1.0,
                 top_p: float = 1.0, stop: Iterable[str] | str | None = None, n: int = 1,
                 seed: int | None = None,
                 should_stop: Callable[[], bool] | None = None,
                 penalties: Penalties | None = None, logprobs: int | None = None) -> list[Completion]:
        """``logprobs``: also return each generated token's log-probability and that many top
        alternatives (OpenAI's ``top_logprobs``; 0 for the token's own only)."""
        ids, max_tokens = self._prompt_ids(prompt, max_tokens)
        outs: list[Completion] = []
        for i in range(n):
            if max_tokens <= 0:
                outs.append(Completion("", "length", len(ids), 0))
                continue
            # n samples are n requests on the cached prompt; each its own seed.
            body = self._body(ids, max_tokens, temperature, top_p, stop,
                              None if seed is None else seed + i, penalties)
            if logprobs is not None:
                # A prompt evaluated partly from the cache of an earlier one gives logits a little apart
                # (measured: up to 0.04 in a normalised option probability), so figures reported to
                # the caller come from a whole evaluation of the prompt, the same in every order.
                body.update(n_probs=max(1, logprobs), cache_prompt=False)
            if should_stop is None:
                res = self._complete(body)
                choice = res["choices"][0]
                outs.append(Completion(choice["text"], choice.get("finish_reason") or "stop",
                                       len(ids), int(res["usage"]["completion_tokens"]),
                                       _openai_logprobs(choice, logprobs)))
            else:
                text, reason, used, lps = [], None, 0, []
                for ch in self._stream(body, len(ids), should_stop, logprobs):
                    text.append(ch.text)
                    reason, used = ch.finish_reason, ch.completion_tokens
                    lps += ch.logprobs or []
                outs.append(Completion("".join(text), reason or "stop", len(ids), used,
                                       lps if logprobs is not None else None))
            if should_stop is not None and should_stop():
                break
        return outs

    def stream_chunks(self, prompt: str, max_tokens: int = 128, temperature: float = 1.0,
                      top_p: float = 1.0, stop: Iterable[str] | str | None = None,
                      seed: int | None = None, penalties: Penalties | None = None) -> Iterator[StreamChunk]:
        ids, max_tokens = self._prompt_ids(prompt, max_tokens)
        if max_tokens <= 0:
            yield StreamChunk("", "length", len(ids), 0)
            return
        yield from self._stream(self._body(ids, max_tokens, temperature, top_p, stop, seed, penalties), len(ids))

    def _stream(self, body: dict, prompt_tokens: int, should_stop: Callable[[], bool] | None = None,
                logprobs: int | None = None) -> Iterator[StreamChunk]:
        """Run a streaming request in a worker thread; closing this generator stops llama.cpp
        at its next token (the callback answers True)."""
        chunks: queue.Queue = queue.Queue()
        closed = threading.Event()
        done = object()

        def callback(chunk: dict) -> bool:
            chunks.put(chunk)
            return closed.is_set() or bool(should_stop and should_stop())

        def work() -> None:
            try:
                self._complete(body, callback)
            except BaseException as exc:  # re-raised in the consumer
                chunks.put(exc)
            finally:
                chunks.put(done)

        worker = threading.Thread(target=work, name="llamacpp-stream", daemon=True)
        worker.start()
        used, finished = 0, False
        try:
            while True:
                item = chunks.get()
                if item is done:
                    break
                if isinstance(item, BaseException):
                    raise item
                if "error" in item:
                    raise LlamaCppError(f"llama.cpp: {item['error'].get('message', item['error'])}")
                choice = (item.get("choices") or [{}])[0]
                text, reason = choice.get("text") or "", choice.get("finish_reason")
                if item.get("usage"):
                    used = int(item["usage"].get("completion_tokens", used))
                elif text:
                    used += 1
                lps = _openai_logprobs(choice, logprobs)
                if reason:
                    finished = True
                    yield StreamChunk(text, reason, prompt_tokens, used, lps)
                elif text or lps:
                    yield StreamChunk(text, None, prompt_tokens, used, lps)
            if not finished:  # stopped by should_stop
                yield StreamChunk("", "stop", prompt_tokens, used)
        finally:
            closed.set()
            worker.join()

    def option_logprobs(self, prompts: Sequence[str], options: Sequence[Sequence[str]],
                        batch_size: int = 16) -> list[list[float]]:
        """Same convention as the torch runtime: prompt and option are tokenised jointly; the
        option's tokens are those after the prompt's own tokens (trailing whitespace on the prompt
        moves onto an option without leading whitespace); an empty option scores 0.0.

        Each option token is one request of one forced token on the cached prompt: llama.cpp
        reports the log-probability of the sampled token from the raw logits, and a large logit
        bias makes the sampled token the one we ask about.  Consecutive requests share the
        prompt, so only the new tokens are evaluated.
        """
        results: list[list[float]] = [[0.0] * len(opts) for opts in options]
        seen: dict[tuple[tuple[int, ...], int], float] = {}
        for i, j, joint, k in option_tokens(prompts, options, self.tokenize):
            total = 0.0
            for t in range(k, len(joint)):
                prefix = tuple(joint[:t])
                if (prefix, joint[t]) not in seen:
                    seen.update(self._forced_logprobs(prefix, joint[t]))
                total += seen[(prefix, joint[t])]
            results[i][j] = total
        return results

    def _forced_logprobs(self, prefix: tuple[int, ...], token: int) -> dict[tuple[tuple[int, ...], int], float]:
        """Log-probability of ``token`` after ``prefix``, and of the top tokens there: the other
        options' first tokens are usually among them, which saves their requests."""
        res = self._complete({"prompt": list(prefix), "max_tokens": 1, "temperature": 0.0, "n_probs": _TOP,
                              "logit_bias": [[token, _FORCE_BIAS]]})
        (step,) = res["choices"][0]["logprobs"]["content"]
        if step["id"] != token:
            raise LlamaCppError(f"llama.cpp sampled token {step['id']} instead of the forced {token}")
        # Both the sampled token's and the top list's figures come from the raw logits (before the bias).
        out = {(prefix, int(top["id"])): float(top["logprob"]) for top in step.get("top_logprobs") or []}
        out[(prefix, token)] = float(step["logprob"])
        return out


def _openai_logprobs(choice: dict, top: int | None) -> list[dict] | None:
    """llama.cpp's per-token log-probabilities in OpenAI's shape (no token ids; ``top`` alternatives)."""
    if top is None:
        return None

    def entry(t: dict) -> dict:
        return {"token": t.get("token", ""), "logprob": float(t["logprob"]), "bytes": t.get("bytes")}

    # An end-of-generation token has no text (nor bytes): OpenAI lists no entry for it.
    return [{**entry(t), "top_logprobs": [entry(a) for a in (t.get("top_logprobs") or [])[:top]]}
            for t in ((choice.get("logprobs") or {}).get("content") or []) if t.get("token") or t.get("bytes")]
