"""The transformers + torch runtime: Hugging Face checkpoints, and GGUF files de-quantised once
(the conversion is :mod:`middleware.models.gguf_convert`'s).

``TransformersModel.load("gemma-3-270m")`` converts the embedded GGUF to a
float32 PyTorch model (about a minute) and caches it as a regular Hugging Face
directory under ``<cache>/models/gemma-3-270m/``; any other name is a local
Hugging Face model directory.  It is the runtime for ``local/PATH`` checkpoints
and the fallback for GGUF models (``?runtime=transformers``).

Decoding is a small manual loop over the KV cache (not ``model.generate``) so
that stop strings end generation immediately, streamed text never contains a
partial stop string, and closing a stream stops the work.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from .._messages import message_text
from .._paths import cache_dir as default_cache_dir
from .gguf_convert import load_from_gguf, save_atomically
from .decoding import Completion, Penalties, PromptToken, StreamChunk, TextRow as _Row, plain_chat_prompt
from .registry import BASE_MODEL, EMBEDDED, gguf_path
from .runtime import Runtime, option_tokens, spinner as _spinner

__all__ = ["TransformersModel", "format_chat"]

_COVER_SPAN = 32


def _offline_env() -> None:
    # Never let transformers/huggingface_hub try the network.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def format_chat(messages: Sequence[dict], tokenizer: Any) -> tuple[str, list[str]]:
    """Render chat ``messages`` as a prompt; return ``(prompt, stop_strings)``.

    A tokenizer with a chat template uses it (the template's own end-of-turn
    token ends generation, so no stop strings).  Base models get plain text
    with role labels ("System: ...\\n\\nUser: ...\\n\\nAssistant:") and stop at
    the next role label.
    """
    if getattr(tokenizer, "chat_template", None):
        plain = [{"role": m.get("role", "user"), "content": message_text(m.get("content"))}
                 for m in messages]
        prompt = tokenizer.apply_chat_template(plain, add_generation_prompt=True, tokenize=False)
        return prompt, []
    return plain_chat_prompt(messages)


@contextlib.contextmanager
def _quiet_transformers():
    """Silence transformers' progress bars and info logs (the spinner replaces them)."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    level = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    # The GGUF converter uses a bare tqdm that ignores the switch above.
    gguf_utils = sys.modules.get("transformers.modeling_gguf_pytorch_utils")
    if gguf_utils is None:
        with contextlib.suppress(ImportError):
            import transformers.modeling_gguf_pytorch_utils as gguf_utils
    bar = getattr(gguf_utils, "tqdm", None)
    if bar is not None:
        gguf_utils.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        if bar is not None:
            gguf_utils.tqdm = bar
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _limit_torch_threads() -> None:
    import torch

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    if torch.get_num_threads() > cores:
        torch.set_num_threads(cores)


def _penalise(logits: Any, context: Any, p: Penalties) -> Any:
    """llama.cpp's repetition penalties on a batch of logits, given each row's context token ids."""
    import torch

    window = context[:, -p.last_n:]
    counts = torch.zeros_like(logits).scatter_add_(1, window, torch.ones(window.shape, dtype=logits.dtype))
    seen = counts > 0
    if p.repeat != 1.0:
        logits = torch.where(seen, torch.where(logits > 0, logits / p.repeat, logits * p.repeat), logits)
    return logits - counts * p.frequency - seen.to(logits.dtype) * p.presence


class TransformersModel(Runtime):
    """A causal LM plus tokenizer with completion, streaming and option scoring.

    ``forward_passes`` counts every model forward call (prompt prefill, each
    decoding step, each ``option_logprobs`` batch).  Forward calls are
    serialised with a lock: concurrent requests interleave step by step instead
    of oversubscribing the CPU cores.
    """

    runtime = "transformers"

    def __init__(self, model: Any, tokenizer: Any, name: str = "model"):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.forward_passes = 0
        self._lock = threading.RLock()
        self._logits_to_keep = "logits_to_keep" in inspect.signature(model.forward).parameters
        eos: set[int] = set()
        for src in (getattr(model, "generation_config", None), model.config, tokenizer):
            value = getattr(src, "eos_token_id", None)
            if value is not None:
                eos.update([value] if isinstance(value, int) else value)
        self.eos_token_ids = eos

    # ----------------------------------------------------------------- loading

    @classmethod
    def load(cls, name_or_path: str = BASE_MODEL, cache_dir: str | os.PathLike | None = None,
             progress: bool = True) -> "TransformersModel":
        """Load an embedded model (e.g. ``"gemma-3-270m"``) or a local HF model directory.

        An embedded model is converted from GGUF on first use and cached under
        ``<cache_dir>/models/NAME/``.
        """
        _offline_env()
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        _limit_torch_threads()
        with _spinner(f"Loading {name_or_path} ...", progress), _quiet_transformers():
            if name_or_path in EMBEDDED:
                cache = Path(cache_dir or default_cache_dir())
                target = cache / "models" / name_or_path
                if not (target / "config.json").exists():
                    model, tokenizer = load_from_gguf(gguf_path(name_or_path, cache))
                    save_atomically(model, tokenizer, target)
                    return cls(model, tokenizer, name_or_path)
                path = target
            else:
                path = Path(name_or_path).expanduser()
                if not path.is_dir():
                    raise FileNotFoundError(f"not an embedded model ({', '.join(EMBEDDED)}) "
                                            f"nor a local model directory: {name_or_path}")
            tokenizer = AutoTokenizer.from_pretrained(str(path))
            model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
        return cls(model, tokenizer, name_or_path)

    # ----------------------------------------------------------------- internals

    def _forward(self, **kwargs: Any) -> Any:
        if not self._logits_to_keep:
            kwargs.pop("logits_to_keep", None)
        with self._lock:
            self.forward_passes += 1
            return self.model(**kwargs)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, adding BOS unless the text already starts with it."""
        bos = getattr(self.tokenizer, "bos_token", None)
        special = not (bos and text.startswith(bos))
        return self.tokenizer(text, add_special_tokens=special)["input_ids"]

    def _steps(self, prompt: str, n: int, max_tokens: int, temperature: float, top_p: float,
               seed: int | None, penalties: Penalties | None = None) -> Iterator[Any]:
        """Yield a tensor of ``n`` sampled next tokens per step, forever."""
        import torch

        penalise = penalties is not None and penalties.active

        ids = self.encode(prompt)
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if limit and len(ids) + max_tokens > limit:
            ids = ids[-max(1, limit - max_tokens):]
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        inputs = torch.tensor([ids] * n)
        context = inputs
        past = None
        with torch.inference_mode():
            while True:
                out = self._forward(input_ids=inputs, past_key_values=past, use_cache=True,
                                    logits_to_keep=1)
                past = out.past_key_values
                logits = out.logits[:, -1, :].float()
                if penalise:
                    logits = _penalise(logits, context, penalties)
                if temperature <= 0:
                    nxt = logits.argmax(-1)
                else:
                    probs = torch.softmax(logits / temperature, -1)
                    if top_p < 1.0:
                        sp, si = probs.sort(-1, descending=True)
                        # Keep the smallest prefix whose mass reaches top_p (always >= 1 token).
                        drop = sp.cumsum(-1) - sp >= top_p
                        sp = sp.masked_fill(drop, 0.0)
                        probs = torch.zeros_like(probs).scatter(-1, si, sp)
                    nxt = torch.multinomial(probs, 1, generator=gen).squeeze(-1)
                yield nxt
                inputs = nxt.unsqueeze(-1)
                if penalise:
                    context = torch.cat([context, inputs], dim=-1)

    def prompt_logprobs(self, prompt: str, top: int = 0) -> list[PromptToken]:
        """One forward pass over the prompt (BOS added as in :meth:`encode`, and not listed)."""
        import torch

        enc = self.tokenizer(prompt, add_special_tokens=True, return_offsets_mapping=True)
        ids, spans = list(enc["input_ids"]), list(enc["offset_mapping"])
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if limit and len(ids) > limit:
            from ..errors import InputError

            raise InputError(f"the prompt has {len(ids)} tokens; {self.name} reads at most {limit}", param="prompt")
        if not ids:
            return []
        with torch.inference_mode():
            logits = self._forward(input_ids=torch.tensor([ids])).logits[0].float()
            logp = torch.log_softmax(logits, -1)
            best = logp.topk(top, -1) if top else None  # every position's alternatives in one call
        special = set(self.tokenizer.all_special_ids)
        out = []
        for t, (tid, (start, end)) in enumerate(zip(ids, spans)):
            if tid in special and start == end:  # BOS: it conditions the first token, it is not prompt text
                continue
            lp = None if t == 0 else float(logp[t - 1, tid])
            alts: dict[str, float] = {}
            if best is not None and t > 0:
                alts = {self.tokenizer.decode([int(i)]): float(v)
                        for v, i in zip(best.values[t - 1], best.indices[t - 1])}
            out.append(PromptToken(prompt[start:end], int(start), lp, alts))
        return out

    def _prompt_len(self, prompt: str) -> int:
        return len(self.encode(prompt))

    # ----------------------------------------------------------------- public API

    def format_chat(self, messages: Sequence[dict]) -> tuple[str, list[str]]:
        return format_chat(messages, self.tokenizer)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def sampling_defaults(self) -> tuple[float, float]:
        gc = getattr(self.model, "generation_config", None)
        if gc is not None and getattr(gc, "do_sample", False):
            return float(gc.temperature or 1.0), float(gc.top_p or 1.0)
        return 1.0, 1.0

    def generate(self, prompt: str, max_tokens: int = 128, temperature: float = 1.0,
                 top_p: float = 1.0, stop: Iterable[str] | str | None = None, n: int = 1,
                 seed: int | None = None,
                 should_stop: Callable[[], bool] | None = None,
                 penalties: Penalties | None = None) -> list[Completion]:
        """Sample ``n`` completions of ``prompt`` (decoded together as one batch).

        ``temperature`` 0 is greedy.  Output ends at the first stop string
        (excluded, finish_reason "stop"), at EOS ("stop") or after
        ``max_tokens`` tokens ("length").  ``should_stop`` is polled every step
        to abandon the work early (the partial text is returned, reason "stop").
        """
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        prompt_tokens = self._prompt_len(prompt)
        rows = [_Row(self.tokenizer, stops, max_tokens) for _ in range(n)]
        parts: list[list[str]] = [[] for _ in range(n)]
        if max_tokens > 0:
            steps = self._steps(prompt, n, max_tokens, temperature, top_p, seed, penalties)
            try:
                for nxt in steps:
                    for row, part, tok in zip(rows, parts, nxt.tolist()):
                        if row.finish_reason is None:
                            part.append(row.push(tok, tok in self.eos_token_ids))
                    if all(r.finish_reason for r in rows) or (should_stop and should_stop()):
                        break
            finally:
                steps.close()
        return [Completion("".join(p), r.finish_reason or ("length" if max_tokens <= 0 else "stop"),
                           prompt_tokens, len(r.ids))
                for r, p in zip(rows, parts)]

    def stream_chunks(self, prompt: str, max_tokens: int = 128, temperature: float = 1.0,
                      top_p: float = 1.0, stop: Iterable[str] | str | None = None,
                      seed: int | None = None, penalties: Penalties | None = None) -> Iterator[StreamChunk]:
        """Like :meth:`stream` but yields :class:`StreamChunk` with counts; the
        last chunk (possibly with empty text) carries the finish reason."""
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        prompt_tokens = self._prompt_len(prompt)
        row = _Row(self.tokenizer, stops, max_tokens)
        if max_tokens <= 0:
            yield StreamChunk("", "length", prompt_tokens, 0)
            return
        steps = self._steps(prompt, 1, max_tokens, temperature, top_p, seed, penalties)
        try:
            for nxt in steps:
                tok = int(nxt[0])
                delta = row.push(tok, tok in self.eos_token_ids)
                if row.finish_reason:
                    yield StreamChunk(delta, row.finish_reason, prompt_tokens, len(row.ids))
                    return
                if delta:
                    yield StreamChunk(delta, None, prompt_tokens, len(row.ids))
        finally:
            # Runs when the consumer closes us early too: drops the KV cache.
            steps.close()

    def option_logprobs(self, prompts: Sequence[str], options: Sequence[Sequence[str]],
                        batch_size: int = 16, max_batch_tokens: int = 8192) -> list[list[float]]:
        """Total log-probability of each option as a continuation of its prompt.

        Convention: prompt and option are tokenised jointly (``prompt + option``)
        and the option's tokens are those after the prompt's own tokens, so put
        the separating space in the option (``"is"`` + ``" Paris"``).  Trailing
        whitespace on the prompt is moved onto the option when the option has
        no leading whitespace ("is " + "Paris" scores " Paris").  If the joint
        tokenisation merges across the boundary, the option is scored from the
        first differing token.  An empty option scores 0.0.

        Work is deduplicated (options sharing a prefix, e.g. all single-token
        options, need one row) and batched with left padding and explicit
        position ids; only the last positions' logits are computed.
        """
        import torch

        results: list[list[float]] = [[0.0] * len(opts) for opts in options]
        # rows: input ids; needs: (prompt idx, option idx, row key, first pos, option ids)
        rows: dict[tuple[int, ...], int] = {}
        needs: list[tuple[int, int, tuple[int, ...], int, list[int]]] = []
        for i, j, joint, k in option_tokens(prompts, options, self.encode):
            opt_ids = joint[k:]
            if not opt_ids:
                continue
            key = tuple(joint[:-1])  # the last option token is predicted, never input
            rows.setdefault(key, len(rows))
            needs.append((i, j, key, k, opt_ids))
        if not needs:
            return results

        # A row that is a prefix of another row is covered by it (causal model).
        # Only prefixes within _COVER_SPAN tokens of a row's end are indexed:
        # that catches options sharing a prompt without quadratic cost on long prompts.
        cover: dict[tuple[int, ...], tuple[int, ...]] = {}
        kept: list[tuple[int, ...]] = []
        for key in sorted(rows, key=len, reverse=True):
            if key not in cover:
                kept.append(key)
                for m in range(len(key), max(0, len(key) - _COVER_SPAN) - 1, -1):
                    cover.setdefault(key[:m], key)
        # How many trailing positions each kept row must return logits for.
        tail = {h: 0 for h in kept}
        for _, _, key, k, opt_ids in needs:
            h = cover[key]
            tail[h] = max(tail[h], len(h) - (k - 1))
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            pad_id = next(iter(self.eos_token_ids), 0)

        logps: dict[tuple[int, ...], Any] = {}
        kept.sort(key=len)  # similar lengths together: less padding
        with torch.inference_mode():
            start = 0
            while start < len(kept):
                end = start + 1
                while (end < len(kept) and end - start < batch_size
                       and (end + 1 - start) * len(kept[end]) <= max_batch_tokens):
                    end += 1
                batch = kept[start:end]
                width = max(len(r) for r in batch)
                keep = max(tail[r] for r in batch)
                ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for b, r in enumerate(batch):
                    ids[b, width - len(r):] = torch.tensor(r)
                    mask[b, width - len(r):] = 1
                # Left padding shifts tokens right; positions must still start at 0.
                pos = (mask.cumsum(-1) - 1).clamp(min=0)
                out = self._forward(input_ids=ids, attention_mask=mask, position_ids=pos,
                                    use_cache=False, logits_to_keep=keep)
                lp = torch.log_softmax(out.logits[:, -keep:, :].float(), dim=-1)
                for b, r in enumerate(batch):
                    logps[r] = lp[b]  # positions width-keep .. width-1 == row end aligned
                start = end

        for i, j, key, k, opt_ids in needs:
            h = cover[key]
            lp = logps[h]
            keep = lp.shape[0]
            # Token t of the option (row index k+t) is predicted at row index k+t-1,
            # which sits at offset keep - len(h) + (k+t-1) in the kept tail.
            base = keep - len(h) + k - 1
            idx = torch.arange(base, base + len(opt_ids))
            results[i][j] = float(lp[idx, torch.tensor(opt_ids)].sum())
        return results


