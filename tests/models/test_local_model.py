"""Tests for middleware.models.local_model.

Most tests use a tiny random-weight Llama with a byte-level BPE tokenizer built
offline in the test; the last few use the real embedded Gemma 3 270M (converted
once and cached; the first conversion takes about a minute).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import threading
from pathlib import Path

import pytest
import torch

from middleware.models import transformers_rt as lm_mod
from middleware.models.local_model import (
    EMBEDDED_MODEL,
    LocalModel,
    default_cache_dir,
    format_chat,
    get_local_model,
)

CORPUS = [
    "The cat sat on the mat. The dog sat on the log.",
    "System: You are a helpful assistant.\n\nUser: What is the capital of France?",
    "Assistant: The capital of France is Paris. The capital of Italy is Rome.",
    "User: Tell me a story about the cat and the dog.\n\nAssistant: Once upon a time",
    "Values matter: family, work, religion, politics, friends, leisure time.",
] * 4

TEMPLATE = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</s>{% endfor %}"
            "{% if add_generation_prompt %}<assistant>{% endif %}")


def build_tiny_model(path: Path) -> Path:
    """Save a 2-layer, 32-wide random Llama and an ASCII byte-level BPE tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    # No initial byte alphabet: every token is ASCII, so random outputs decode cleanly.
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=160, special_tokens=["<pad>", "<s>", "</s>"], show_progress=False))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>")
    config = LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, bos_token_id=1, eos_token_id=2,
                         pad_token_id=0, initializer_range=0.3, tie_word_embeddings=False)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    fast.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture()
def tiny(tiny_dir) -> LocalModel:
    model = LocalModel.load(str(tiny_dir), progress=False)
    model.eos_token_ids = set()  # random weights: keep EOS from cutting texts short
    return model


def reference_greedy(model: LocalModel, prompt: str, steps: int) -> list[int]:
    """Greedy token ids by full recomputation each step (no KV cache)."""
    ids = model.encode(prompt)
    out: list[int] = []
    with torch.inference_mode():
        for _ in range(steps):
            logits = model.model(input_ids=torch.tensor([ids + out])).logits[0, -1]
            out.append(int(logits.argmax()))
    return out


def manual_logprob(model: LocalModel, prompt: str, option: str) -> float:
    """log p(option | prompt) from one unpadded forward pass over prompt+option."""
    p_ids, joint = model.encode(prompt), model.encode(prompt + option)
    assert joint[:len(p_ids)] == p_ids
    with torch.inference_mode():
        logp = torch.log_softmax(model.model(input_ids=torch.tensor([joint])).logits[0].float(), -1)
    return float(sum(logp[t - 1, joint[t]] for t in range(len(p_ids), len(joint))))


# --------------------------------------------------------------------------- chat formatting


def test_format_chat_plain(tiny):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"},
                                     {"type": "image_url", "image_url": {"url": "x"}},
                                     {"type": "text", "text": "there"}]},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Capital of France?"},
    ]
    prompt, stops = format_chat(messages, tiny.tokenizer)
    assert prompt == ("System: Be brief.\n\nUser: Hi\nthere\n\nAssistant: Hello.\n\n"
                      "User: Capital of France?\n\nAssistant:")
    assert "\nUser:" in stops and "\nSystem:" in stops


def test_format_chat_template(tiny):
    tiny.tokenizer.chat_template = TEMPLATE
    try:
        prompt, stops = format_chat(
            [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}], tiny.tokenizer)
    finally:
        tiny.tokenizer.chat_template = None
    assert prompt == "<user>Hi</s><assistant>"
    assert stops == []


# --------------------------------------------------------------------------- generation


def test_greedy_matches_reference_decoding(tiny):
    prompt = "The cat sat"
    ref = reference_greedy(tiny, prompt, 12)
    (c,) = tiny.generate(prompt, max_tokens=12, temperature=0)
    assert c.text == tiny.tokenizer.decode(ref, skip_special_tokens=True)
    assert (c.finish_reason, c.completion_tokens) == ("length", 12)
    assert c.prompt_tokens == len(tiny.encode(prompt))


def test_stop_strings_truncate(tiny):
    prompt = "User: Tell me a story"
    full = tiny.generate(prompt, max_tokens=40, temperature=0)[0].text
    assert len(full) > 12
    stop = full[6:9]
    cut = full[:full.find(stop)]
    (c,) = tiny.generate(prompt, max_tokens=40, temperature=0, stop=["zzzz-never", stop])
    assert (c.text, c.finish_reason) == (cut, "stop")
    deltas = list(tiny.stream(prompt, max_tokens=40, temperature=0, stop=stop))
    assert "".join(deltas) == cut
    # The partial stop string must never be emitted, not even transiently.
    emitted = ""
    for d in deltas:
        emitted += d
        assert stop not in emitted


def test_stream_holds_back_partial_stop():
    row = lm_mod._Row(_CharTokenizer(), ["\nUser:"], max_tokens=100)
    out = [row.push(ord(ch), False) for ch in "Paris.\nUs"]
    assert "".join(out) == "Paris."
    assert row.push(ord("x"), False) == "\nUsx"  # not a stop after all: released
    row2 = lm_mod._Row(_CharTokenizer(), ["\nUser:"], max_tokens=100)
    text = "".join(row2.push(ord(ch), False) for ch in "Paris.\nUser:")
    assert (text, row2.finish_reason) == ("Paris.", "stop")


class _CharTokenizer:
    """One token per character (token id = code point)."""

    def decode(self, ids, skip_special_tokens=True):
        return "".join(map(chr, ids))


@pytest.mark.parametrize("temperature,top_p,seed", [(0, 1.0, None), (0.9, 0.8, 123)])
def test_stream_equals_generate(tiny, temperature, top_p, seed):
    kw = dict(max_tokens=25, temperature=temperature, top_p=top_p, seed=seed)
    (c,) = tiny.generate("Once upon a time", **kw)
    chunks = list(tiny.stream_chunks("Once upon a time", **kw))
    assert "".join(ch.text for ch in chunks) == c.text
    assert "".join(tiny.stream("Once upon a time", **kw)) == c.text
    assert chunks[-1].finish_reason == c.finish_reason == "length"
    assert all(ch.finish_reason is None for ch in chunks[:-1])
    assert chunks[-1].completion_tokens == c.completion_tokens


def test_eos_ends_with_stop(tiny):
    ref = reference_greedy(tiny, "The dog", 6)
    tiny.eos_token_ids = {ref[2]} - set(ref[:2])
    if not tiny.eos_token_ids:
        pytest.skip("degenerate greedy sequence")
    (c,) = tiny.generate("The dog", max_tokens=6, temperature=0)
    assert c.finish_reason == "stop" and c.completion_tokens == 2
    assert c.text == tiny.tokenizer.decode(ref[:2])


def test_n_samples_and_seed(tiny):
    a = tiny.generate("The cat", max_tokens=10, temperature=1.0, n=3, seed=7)
    b = tiny.generate("The cat", max_tokens=10, temperature=1.0, n=3, seed=7)
    assert len(a) == 3 and [x.text for x in a] == [x.text for x in b]
    g = tiny.generate("The cat", max_tokens=10, temperature=0, n=2)
    assert g[0].text == g[1].text


def test_closing_stream_stops_generation(tiny):
    gen = tiny.stream("The cat", max_tokens=200, temperature=0)
    next(gen)
    before = tiny.forward_passes
    gen.close()
    assert tiny.forward_passes == before < 50


def test_should_stop_abandons_generate(tiny):
    calls = iter(range(1000))
    (c,) = tiny.generate("The cat", max_tokens=200, temperature=0,
                         should_stop=lambda: next(calls) >= 3)
    assert c.completion_tokens == 4


# --------------------------------------------------------------------------- option scoring


def test_option_logprobs_batched_equals_manual(tiny):
    prompts = ["The cat sat on the", "User: What is the capital of France?\n\nAssistant:",
               "The", "Values matter: family, work,"]
    options = [[" mat", " log", " mat. The dog", ""],
               [" Paris", " The capital of France is Paris.", " Rome"],
               [" cat", " dog sat"],
               [" religion", " politics", " friends, leisure"]]
    batched = tiny.option_logprobs(prompts, options)
    unbatched = tiny.option_logprobs(prompts, options, batch_size=1)
    for i, (p, opts) in enumerate(zip(prompts, options)):
        for j, o in enumerate(opts):
            expected = manual_logprob(tiny, p, o) if o else 0.0
            assert batched[i][j] == pytest.approx(expected, abs=1e-4)
            assert unbatched[i][j] == pytest.approx(expected, abs=1e-4)
    assert all(v < 0 for row in batched for v in row if v)


def test_option_logprobs_whitespace_convention(tiny):
    a = tiny.option_logprobs(["The cat sat on the "], [["mat"]])
    b = tiny.option_logprobs(["The cat sat on the"], [[" mat"]])
    assert a[0][0] == pytest.approx(b[0][0], abs=1e-6)


def test_forward_passes_counting(tiny):
    prompts = ["The cat sat", "The dog sat on", "User: Tell me", "Values matter:", "Once upon"]
    singles = [o for o in (" the", " cat", " dog", " mat")
               if len(tiny.encode(prompts[0] + o)) == len(tiny.encode(prompts[0])) + 1]
    assert len(singles) >= 2, "tokenizer should have some one-token words"
    before = tiny.forward_passes
    tiny.option_logprobs(prompts, [singles] * 5)
    assert tiny.forward_passes - before == 1  # one row per prompt, one batch
    before = tiny.forward_passes
    tiny.option_logprobs(prompts, [singles] * 5, batch_size=1)
    assert tiny.forward_passes - before == 5
    before = tiny.forward_passes
    tiny.option_logprobs(prompts, [[" the cat", " mat on the log"]] * 5)
    assert tiny.forward_passes - before == 1


# --------------------------------------------------------------------------- loading and cache


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("SELFALIGN_CACHE_DIR", str(tmp_path / "a"))
    assert default_cache_dir() == tmp_path / "a"
    monkeypatch.delenv("SELFALIGN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x" / "selfalign"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "selfalign"


def _fake_converter(tiny_dir, calls):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def convert(path):
        assert path.suffix == ".gguf"
        calls.append(1)
        return (AutoModelForCausalLM.from_pretrained(tiny_dir),
                AutoTokenizer.from_pretrained(tiny_dir))
    return convert


def test_embedded_conversion_is_cached(monkeypatch, tmp_path, tiny_dir):
    calls: list[int] = []
    monkeypatch.setattr(lm_mod, "load_from_gguf", _fake_converter(tiny_dir, calls))
    first = LocalModel.load(EMBEDDED_MODEL, cache_dir=tmp_path, progress=False)
    target = tmp_path / "models" / EMBEDDED_MODEL
    assert (target / "config.json").exists()
    # The converted directory and the GGUF joined from the wheel parts; no temporary debris.
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [EMBEDDED_MODEL, "gemma-3-270m-q4_k_m.gguf"]
    second = LocalModel.load(EMBEDDED_MODEL, cache_dir=tmp_path, progress=False)
    assert calls == [1]
    a = first.generate("The cat", max_tokens=5, temperature=0)[0].text
    assert second.generate("The cat", max_tokens=5, temperature=0)[0].text == a


def test_interrupted_conversion_leaves_no_cache(monkeypatch, tmp_path, tiny_dir):
    calls: list[int] = []
    monkeypatch.setattr(lm_mod, "load_from_gguf", _fake_converter(tiny_dir, calls))
    from transformers import PreTrainedTokenizerBase

    def interrupted(self, *a, **k):  # model already written, tokenizer not
        raise KeyboardInterrupt
    monkeypatch.setattr(PreTrainedTokenizerBase, "save_pretrained", interrupted)
    with pytest.raises(KeyboardInterrupt):
        LocalModel.load(EMBEDDED_MODEL, cache_dir=tmp_path, progress=False)
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["gemma-3-270m-q4_k_m.gguf"]
    monkeypatch.undo()
    monkeypatch.setattr(lm_mod, "load_from_gguf", _fake_converter(tiny_dir, calls))
    LocalModel.load(EMBEDDED_MODEL, cache_dir=tmp_path, progress=False)
    assert (tmp_path / "models" / EMBEDDED_MODEL / "tokenizer.json").exists()


def test_missing_model_dir_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        LocalModel.load(str(tmp_path / "nope"), progress=False)


def test_get_local_model_loads_once(monkeypatch, tiny_dir):
    loads: list[str] = []
    real = LocalModel.load.__func__

    def counting(cls, name, cache_dir=None, progress=True):
        loads.append(name)
        return real(cls, name, cache_dir, progress)
    monkeypatch.setattr(LocalModel, "load", classmethod(counting))
    name = str(tiny_dir) + os.sep  # a key no other test uses
    results: list[LocalModel] = []
    threads = [threading.Thread(target=lambda: results.append(get_local_model(name)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(r is results[0] for r in results)
    assert loads == [name]


def test_torch_threads_not_above_cores():
    assert torch.get_num_threads() <= (os.cpu_count() or 1)


# --------------------------------------------------------------------------- embedded Gemma


@pytest.fixture(scope="session")
def gemma() -> LocalModel:
    return get_local_model(EMBEDDED_MODEL, progress=False)


@pytest.mark.slow
def test_gemma_greedy_completion(gemma):
    (c,) = gemma.generate("The capital of France is", max_tokens=8, temperature=0)
    assert c.text.strip() and c.completion_tokens > 0
    assert "".join(gemma.stream("The capital of France is", max_tokens=8, temperature=0)) == c.text


@pytest.mark.slow
def test_gemma_option_logprobs(gemma):
    (scores,) = gemma.option_logprobs(["The capital of France is"], [[" Paris", " banana"]])
    assert scores[0] > scores[1]
