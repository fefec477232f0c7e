"""Where responses come from, behind one small interface.

A backend answers a list of :class:`Request` in one of two modes and reports each result
through a callback as soon as it has it (so the runner can cache it at once):

* ``sample``: ``n`` free-text responses at the model's default temperature -> ``list[str]``;
* ``exact``: the log-probability of each option as the answer -> ``[lp1, lp2]`` (or None
  when the model gave nothing to read them from).

:class:`LocalBackend` runs an in-process model (``local/...``) in batches and scores options
directly; :class:`LiteLLMBackend` calls any model litellm reaches, concurrently under a
semaphore, retrying rate limits with exponential back-off, and reads exact distributions from
the top log-probabilities that providers such as OpenAI and vLLM return.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..errors import ModelCallError
from ..models.provider_errors import is_retryable, retry_after_seconds
from ..models.registry import BASE_MODEL, EVAL_MODEL, is_local, local_name
from .parse import normalize
from .prompts import EvalPrompt

__all__ = ["Request", "Backend", "LocalBackend", "LiteLLMBackend", "get_backend",
           "is_local", "logprobs_from_top", "continuation_logprob", "API_SCORINGS"]

OnResult = Callable[["Request", Any], None]


@dataclass(frozen=True)
class Request:
    key: str
    """Cache key: identifies the response completely."""
    prompt: EvalPrompt

    @property
    def seed(self) -> int:
        # Each prompt its own reproducible sampling stream, independent of run order.
        return int(hashlib.sha256(self.key.encode()).hexdigest()[:8], 16)


class Backend(ABC):
    name: str
    """Model identity used in cache keys."""
    supports_exact: bool = True

    @property
    @abstractmethod
    def calls(self) -> int:
        """Model calls made so far: batched forward passes (local) or API requests."""

    @abstractmethod
    def settings(self, mode: str, samples: int) -> dict:
        """Everything besides the prompt that determines a response (part of the cache key)."""

    @abstractmethod
    def run(self, requests: Sequence[Request], mode: str, samples: int, on_result: OnResult) -> None:
        """Answer every request, calling ``on_result(request, value)`` as each value is ready."""

    def prepare(self) -> None:
        """Get ready to answer (e.g. load a model) before the progress bar starts."""


# --------------------------------------------------------------------------- local models


class LocalBackend(Backend):
    """An in-process model (:mod:`middleware.models`: llama.cpp for GGUF, else transformers).

    Loaded on first use, so a fully cached run never loads it.
    """

    def __init__(self, model: str = EVAL_MODEL, local_model: Any = None, batch_size: int = 8,
                 max_tokens: int | None = None, progress: bool = True, sample_seed: int = 0):
        self.name = model
        self._model = local_model
        self.batch_size = batch_size
        self.sample_seed = sample_seed
        self.max_tokens = max_tokens
        self._progress = progress
        self._start: int | None = None if local_model is None else local_model.forward_passes
        self.sequence_passes = 0
        """Forward passes counted per sequence: a batch of b prompts is b passes, n samples of t steps n*t."""

    @property
    def model(self) -> Any:
        if self._model is None:
            from ..models.loading import get_local_model

            self._model = get_local_model(local_name(self.name) or BASE_MODEL, progress=self._progress)
            self._start = self._model.forward_passes
        return self._model

    @property
    def calls(self) -> int:
        return 0 if self._model is None else self._model.forward_passes - (self._start or 0)

    def prepare(self) -> None:
        self.model

    def settings(self, mode: str, samples: int) -> dict:
        from ..models.registry import parse_model

        # The runtime (and a de-quantised copy) is part of the key: llama.cpp and torch scores
        # agree closely, not exactly.  No precision key unless set, so existing caches stay valid.
        spec = parse_model(self.name)
        extra = {"precision": spec.precision} if spec.precision else {}
        if mode == "exact":
            return {"scoring": "option-logprobs", "runtime": spec.runtime, **extra}
        return {"n": samples, "temperature": "model-default", "stop": ["\n"], "max_tokens": self.max_tokens or "auto",
                "sample_seed": self.sample_seed, "runtime": spec.runtime, **extra}

    def _max_tokens(self, prompt: EvalPrompt) -> int:
        if self.max_tokens:
            return self.max_tokens
        # Room for the longer option and a little punctuation; the first line is all that is parsed.
        longest = max(self.model.count_tokens(" " + o) for o in prompt.options)
        return longest + 4

    def run(self, requests, mode, samples, on_result):
        if not requests:
            return
        model = self.model
        # A paper prompt is the model's input as it is; a product request goes through the model's own
        # rendering (chat template, or the plain "User: ... Assistant:" text of a base model), as in serve.
        rendered = {r.key: (r.prompt.text, []) if r.prompt.chat is None else model.format_chat(r.prompt.messages())
                    for r in requests}
        if mode == "exact":
            # torch batches: similar lengths together, less padding.  llama.cpp: alphabetical order
            # puts prompts sharing a prefix next to each other, and its KV cache reuses that prefix.
            order = ((lambda r: rendered[r.key][0]) if model.runtime == "llamacpp"
                     else (lambda r: len(rendered[r.key][0])))
            requests = sorted(requests, key=order)
            for i in range(0, len(requests), self.batch_size):
                chunk = requests[i:i + self.batch_size]
                texts = [rendered[r.key][0] for r in chunk]
                lps = model.option_logprobs(texts, [r.prompt.continuations(None if r.prompt.chat is None else t)
                                                    for r, t in zip(chunk, texts)], batch_size=self.batch_size)
                self.sequence_passes += len(chunk)
                for r, lp in zip(chunk, lps):
                    on_result(r, [float(x) for x in lp])
            return
        temperature, top_p = model.sampling_defaults()
        for r in requests:
            before = model.forward_passes
            text, stops = rendered[r.key]
            outs = model.generate(text, max_tokens=self._max_tokens(r.prompt), temperature=temperature,
                                  top_p=top_p, stop=["\n", *stops], n=samples, seed=r.seed ^ self.sample_seed)
            self.sequence_passes += samples * (model.forward_passes - before)
            on_result(r, [c.text for c in outs])


# --------------------------------------------------------------------------- litellm


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def logprobs_from_top(content: Sequence[Any], options: Sequence[str]) -> list[float] | None:
    """Option log-probabilities from a chat completion's per-token ``top_logprobs``.

    Walks the generated tokens while the text so far is a prefix both options share; at the
    first position where top tokens tell the options apart, each option gets the summed
    probability of the top tokens consistent with it only (a token ending inside a word counts only
    in the option's own case: " I" is no start of "important"). The shared prefix's probability is
    common to both and cancels when the two are renormalised. An option absent from the top
    list gets the smallest listed log-probability (an upper bound: the list is truncated).
    None when no position separates the options (e.g. the model began with other words).
    """
    opts = [normalize(o).strip() for o in options]
    raw_opts = [o.strip() for o in options]
    prefix = ""
    for pos in content or []:
        top = _get(pos, "top_logprobs") or []
        mass = [0.0, 0.0]
        floor = math.inf
        for t in top:
            token, lp = _get(t, "token", ""), float(_get(t, "logprob", -math.inf))
            floor = min(floor, lp)
            s = normalize(prefix + token).lstrip()
            if not s.strip():
                continue
            raw = (prefix + token).lstrip()
            # A text ending inside an option's word must match its case: " I" (as in "I think") is no start
            # of "important", while " Important" and " Not" (whole words) are the options capitalised.
            fits = [(o.startswith(s) and (len(s) == len(o) or not o[len(s)].isalnum() or ro.startswith(raw)))
                    or (s.startswith(o) and not s[len(o):len(o) + 1].isalnum()) for o, ro in zip(opts, raw_opts)]
            if fits[0] != fits[1]:
                mass[0 if fits[0] else 1] += math.exp(lp)
        if mass[0] > 0 or mass[1] > 0:
            return [math.log(m) if m > 0 else floor for m in mass]
        chosen = normalize(prefix + (_get(pos, "token", "") or "")).lstrip()
        # Only a prefix common to both options (or leading whitespace) lets us look one token further.
        if chosen.strip() and not all(o.startswith(chosen) for o in opts):
            return None
        prefix += _get(pos, "token", "") or ""
    return None


API_SCORINGS = ("top", "echo")
"""How exact mode reads an API model: ``top`` from the answer's top_logprobs (chat models, OpenAI); ``echo``
from the prompt's own token log-probabilities (text completions with echo: vLLM, ``selfalign serve``)."""


def continuation_logprob(token_logprobs: Sequence[Any], offsets: Sequence[int], start: int, end: int,
                         model: str = "the model") -> float:
    """The summed log-probability of the text between ``start`` and ``end`` from an echoed prompt's tokens: every
    token that ends past ``start`` (one straddling the boundary counts, as in local scoring) and begins before
    ``end`` (the generated token after the prompt does not)."""
    if not offsets or len(offsets) != len(token_logprobs):
        raise ModelCallError(f"{model} returned no prompt log-probabilities for an echo request: use --api-scoring top")
    total, seen = 0.0, False
    for i, (lp, at) in enumerate(zip(token_logprobs, offsets)):
        stop = offsets[i + 1] if i + 1 < len(offsets) else end
        if stop > start and at < end:
            if lp is None:
                raise ModelCallError(f"{model} gave no log-probability for a prompt token: use --api-scoring top")
            total += float(lp)
            seen = True
    if not seen:
        raise ModelCallError(f"{model} returned no token for the scored continuation")
    return total


class LiteLLMBackend(Backend):
    """Any model litellm reaches (``gpt-4o-mini``, ``hosted_vllm/NAME`` with ``api_base``...)."""

    def __init__(self, model: str, api_base: str | None = None, concurrency: int = 8, max_retries: int = 6,
                 backoff: float = 1.0, max_tokens: int | None = None, completion: Callable | None = None,
                 sleep: Callable | None = None, top_logprobs: int = 20, scoring: str = "top",
                 text_completion: Callable | None = None):
        self.scoring = scoring  # one of API_SCORINGS (EvalConfig checks it)
        self._text_completion = text_completion
        self.name = model if api_base is None else f"{model}@{api_base}"
        self.model = model
        self.api_base = api_base
        self.concurrency = max(1, concurrency)
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_tokens = max_tokens
        self.top_logprobs = top_logprobs
        self._completion = completion
        self._sleep = sleep or asyncio.sleep
        self._calls = 0
        self._calls_lock = threading.Lock()
        self.retries = 0

    @property
    def calls(self) -> int:
        return self._calls

    def settings(self, mode: str, samples: int) -> dict:
        if mode == "exact" and self.scoring == "echo":
            return {"logprobs": "echo", "rendering": "plain"}
        if mode == "exact":
            return {"logprobs": "top", "top_logprobs": self.top_logprobs, "temperature": 0}
        return {"n": samples, "temperature": "model-default", "max_tokens": self.max_tokens or 32}

    def _acompletion(self) -> Callable:
        if self._completion is None:
            from ..models.provider import import_litellm

            self._completion = import_litellm().acompletion
        return self._completion

    def _retryable(self, exc: BaseException) -> bool:
        return is_retryable(exc)

    def _atext_completion(self) -> Callable:
        if self._text_completion is None:
            from ..models.provider import import_litellm

            litellm = import_litellm()
            # litellm's text completions open an aiohttp session per call that its cleanup does not close
            # ("Unclosed client session" at exit); plain httpx transports close with their clients.
            litellm.disable_aiohttp_transport = True
            self._text_completion = litellm.atext_completion
        return self._text_completion

    async def _call(self, sem: asyncio.Semaphore, call: Callable | None = None, **kwargs: Any) -> Any:
        call = call or self._acompletion()
        kwargs = {"model": self.model, **kwargs}
        if self.api_base:
            kwargs["api_base"] = self.api_base
        attempt = 0
        while True:
            async with sem:
                with self._calls_lock:
                    self._calls += 1
                try:
                    return await call(**kwargs)
                except Exception as e:  # noqa: BLE001 - classified below
                    if not self._retryable(e) or attempt >= self.max_retries:
                        first = (str(e).splitlines() or [""])[0][:300]
                        raise ModelCallError(f"{self.model}: {type(e).__name__}: {first}") from e
                    retry_after = retry_after_seconds(e)
            # Back off outside the semaphore so other requests keep the slots busy.
            delay = retry_after if retry_after is not None else self.backoff * 2 ** attempt * (0.5 + random.random())
            self.retries += 1
            attempt += 1
            await self._sleep(min(delay, 60.0))

    async def _sample(self, sem, req: Request, samples: int) -> list[str]:
        texts: list[str] = []
        # Providers that ignore n return fewer choices: top up with further calls.
        while len(texts) < samples:
            resp = await self._call(sem, messages=req.prompt.messages(), n=samples - len(texts),
                                    max_tokens=self.max_tokens or 32, drop_params=True)
            got = [(_get(_get(c, "message"), "content") or "") for c in (_get(resp, "choices") or [])]
            if not got:
                raise ModelCallError(f"{self.model}: a response without choices")
            texts += got
        return texts[:samples]

    async def _echo(self, sem, req: Request) -> list[float]:
        """Each option scored as the continuation of the prompt, from the log-probabilities a text completion
        with ``echo`` returns for the prompt's own tokens: the forced scoring of ``local/`` models, over HTTP.
        The prompt is rendered here as the product renders it for a base model (the paper's text as it is, a
        chat request as plain "User: ... Assistant:" text)."""
        from ..models.decoding import plain_chat_prompt

        rendered = req.prompt.text if req.prompt.chat is None else plain_chat_prompt(req.prompt.messages())[0]
        out = []
        for cont in req.prompt.continuations(None if req.prompt.chat is None else rendered):
            full = rendered + cont
            resp = await self._call(sem, self._atext_completion(), prompt=full, echo=True, logprobs=1, max_tokens=1,
                                    temperature=0)
            choices = _get(resp, "choices") or []
            lp = _get(choices[0], "logprobs") if choices else None
            out.append(continuation_logprob(_get(lp, "token_logprobs") or [], _get(lp, "text_offset") or [],
                                            len(rendered), len(full), self.model))
        return out

    async def _exact(self, sem, req: Request) -> list[float] | None:
        if self.scoring == "echo":
            return await self._echo(sem, req)
        try:
            resp = await self._call(sem, messages=req.prompt.messages(), max_tokens=8, temperature=0, logprobs=True,
                                    top_logprobs=self.top_logprobs)
        except ModelCallError as e:
            # The server cannot know that its caller is the evaluator, so the way out is named here.
            if "logprobs" not in str(e):
                raise
            raise ModelCallError(f"{e} (a base model served with text completions, such as vLLM or selfalign "
                                 "serve, is scored by --api-scoring echo)") from e
        choices = _get(resp, "choices") or []
        lp = _get(choices[0], "logprobs") if choices else None
        content = _get(lp, "content") if lp is not None else None
        if not content:
            raise ModelCallError(f"{self.model} returned no log-probabilities: use --mode sample")
        return logprobs_from_top(content, req.prompt.options)

    async def _run(self, requests, mode, samples, on_result):
        sem = asyncio.Semaphore(self.concurrency)

        async def one(req: Request):
            value = await (self._exact(sem, req) if mode == "exact" else self._sample(sem, req, samples))
            return req, value

        tasks = [asyncio.ensure_future(one(r)) for r in requests]
        try:
            for fut in asyncio.as_completed(tasks):
                req, value = await fut
                on_result(req, value)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def run(self, requests, mode, samples, on_result):
        if not requests:
            return
        coro = self._run(list(requests), mode, samples, on_result)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(coro)
            return
        # Called from inside an event loop (a notebook): run ours in a thread.
        error: list[BaseException] = []

        def target():
            try:
                asyncio.run(coro)
            except BaseException as e:  # noqa: BLE001 - re-raised below
                error.append(e)

        th = threading.Thread(target=target)
        th.start()
        th.join()
        if error:
            raise error[0]


def get_backend(model: str, api_base: str | None = None, concurrency: int = 8, max_tokens: int | None = None,
                progress: bool = True, seed: int = 0, api_scoring: str = "top") -> Backend:
    """``local/NAME`` -> the in-process model; anything else -> litellm."""
    if is_local(model):
        return LocalBackend(model, max_tokens=max_tokens, progress=progress, sample_seed=seed)
    return LiteLLMBackend(model, api_base=api_base, concurrency=concurrency, max_tokens=max_tokens,
                          scoring=api_scoring)
