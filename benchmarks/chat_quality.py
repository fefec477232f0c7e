"""Benchmark: does the embedded chat model loop, and where do its answers end?  Before and after, in one run.

Each of the 50 English questions in ``benchmarks/data/chat_questions.txt`` (30 about values, 20
neutral) is sent as ``selfalign chat --country us --language en`` sends it: with the five aligned
demonstrations in the system message, through the model's chat template.  Every decoding
configuration answers every question with the same seed, and the run prints side by side:

* **loop rate**: the share of answers in which some sequence of 8 words occurs 3 or more times;
* mean answer length (words and tokens), the share ending at the model's own end of turn (EOS)
  rather than at the token limit, and the share whose text ends a sentence;
* the share of answers that contain a demonstration word for word (the issue's "copies a
  demonstration instead of answering", and quoting one while discussing it);
* three sample answers of each configuration.

Configurations: ``before`` is the decoding up to December 2026 (temperature 0.2, top-p 0.9, no
penalty); ``after`` is what a chat request that sets nothing gets now (the model's
:meth:`~middleware.models.runtime.Runtime.penalty_defaults`); ``--extra`` adds llama.cpp sampler
settings to compare (JSON: name -> request fields, e.g. DRY's ``dry_multiplier``).

    python3 benchmarks/chat_quality.py                      # before and after, 50 questions
    python3 benchmarks/chat_quality.py --extra '{"dry": {"dry_multiplier": 0.8}}' --json out.json
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402
from rich.table import Table  # noqa: E402
from rich.text import Text  # noqa: E402

from middleware.chat.session import ChatSession  # noqa: E402
from middleware.models.decoding import Penalties  # noqa: E402
from middleware.models.llamacpp import LlamaCppModel  # noqa: E402
from middleware.models.loading import get_local_model  # noqa: E402

QUESTIONS = ROOT / "benchmarks" / "data" / "chat_questions.txt"
NGRAM, TIMES = 8, 3
SENTENCE_END = re.compile(r"[.!?:)\"'”’*]\s*$")
SAMPLES = ("Is it important for women to work?", "Would you mind having neighbours who are homosexual?",
           "Why is the sky blue?")


def questions(path: Path = QUESTIONS) -> list[str]:
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def most_repeated(text: str, n: int = NGRAM) -> int:
    """How often the most frequent sequence of ``n`` words occurs in ``text`` (case and punctuation ignored)."""
    words = re.findall(r"[\w']+", text.lower())
    counts = collections.Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    return max(counts.values(), default=0)


def loops(text: str) -> bool:
    """The benchmark's loop: some 8-word sequence 3 or more times."""
    return most_repeated(text) >= TIMES


def copies(text: str, demonstrations: list[str]) -> bool:
    """Whether the answer contains one of the injected demonstrations word for word (as its answer, or
    quoted while it discusses "the statement")."""
    words = " ".join(re.findall(r"[\w']+", text.lower()))
    return any(" ".join(re.findall(r"[\w']+", d.lower())) in words for d in demonstrations)


def answer_all(lm, prompts: list[str], config: dict, max_tokens: int, progress: Progress, label: str) -> list[dict]:
    """Answers of one configuration; ``config`` holds temperature, top_p, penalties and any raw llama.cpp fields."""
    task = progress.add_task(label, total=len(prompts))
    out = []
    for i, prompt in enumerate(prompts):
        t0 = time.perf_counter()
        if config.get("raw"):
            ids, limit = lm._prompt_ids(prompt, max_tokens)
            body = {**lm._body(ids, limit, config["temperature"], config["top_p"], [], i, config["penalties"]),
                    **config["raw"]}
            choice = lm._complete(body)
            c = (choice["choices"][0]["text"], choice["choices"][0].get("finish_reason") or "stop",
                 int(choice["usage"]["completion_tokens"]))
        else:
            (r,) = lm.generate(prompt, max_tokens=max_tokens, temperature=config["temperature"], top_p=config["top_p"],
                               seed=i, penalties=config["penalties"])
            c = (r.text, r.finish_reason, r.completion_tokens)
        text = c[0].strip()
        out.append({"text": text, "finish_reason": c[1], "tokens": c[2], "seconds": time.perf_counter() - t0,
                    "repeats": most_repeated(text)})
        progress.advance(task)
    return out


def summary(answers: list[dict], demonstrations: list[list[str]]) -> dict:
    n = len(answers)
    return {"loop_rate": sum(a["repeats"] >= TIMES for a in answers) / n,
            "copy_rate": sum(copies(a["text"], d) for a, d in zip(answers, demonstrations)) / n,
            "mean_words": sum(len(a["text"].split()) for a in answers) / n,
            "mean_tokens": sum(a["tokens"] for a in answers) / n,
            "eos": sum(a["finish_reason"] == "stop" for a in answers) / n,
            "sentence_end": sum(bool(SENTENCE_END.search(a["text"])) for a in answers) / n,
            "seconds": sum(a["seconds"] for a in answers)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-instruct", help="Embedded model or GGUF file (llama.cpp).")
    ap.add_argument("--country", default="us")
    ap.add_argument("--max-tokens", type=int, default=256, help="Token limit per answer (the chat's default).")
    ap.add_argument("--limit", type=int, help="Only the first N questions.")
    ap.add_argument("--extra", default="{}", help="More configurations: JSON name -> llama.cpp request fields "
                                                  "added to the 'after' decoding.")
    ap.add_argument("--only", help="Run only these configurations (comma-separated names).")
    ap.add_argument("--json", type=Path, help="Also write every answer and figure here.")
    args = ap.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 140)

    lm = get_local_model(f"{args.model}?runtime=llamacpp", progress=False)
    qs = questions()[:args.limit]
    session = ChatSession(None, country=args.country, language="en")
    requests = [session.request(q) for q in qs]
    prompts = [lm.format_chat(messages)[0] for messages, _ in requests]
    demonstrations = [[d.text for d in demos] for _, demos in requests]
    temperature, top_p = lm.sampling_defaults()
    configs = {"before": {"temperature": 0.2, "top_p": 0.9, "penalties": Penalties()},
               "after": {"temperature": temperature, "top_p": top_p, "penalties": lm.penalty_defaults()}}
    for name, raw in json.loads(args.extra).items():
        if not isinstance(lm, LlamaCppModel):
            raise SystemExit("--extra needs the llama.cpp runtime")
        configs[name] = {**configs["after"], "raw": raw}
    if args.only:
        configs = {name: configs[name] for name in args.only.split(",")}

    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    results = {}
    with Progress(console=console, transient=True) as progress:
        for name, config in configs.items():
            results[name] = answer_all(lm, prompts, config, args.max_tokens, progress, name)
    figures = {name: summary(answers, demonstrations) for name, answers in results.items()}

    table = Table(title=f"{args.model}, {len(qs)} questions, aligned with {args.country} (k=5), "
                        f"max_tokens {args.max_tokens}; load average {load}")
    table.add_column("")
    for name, config in configs.items():
        p = config["penalties"]
        fields = {**p.llamacpp(), **config.get("raw", {})}
        table.add_column(f"{name}\nT={config['temperature']} top-p={config['top_p']}\n"
                         + "\n".join(f"{k} {v}" for k, v in fields.items() if k.startswith(("repeat", "dry"))),
                         justify="right")
    rows = [("loop rate (8 words 3+ times)", lambda f: f"{100 * f['loop_rate']:.0f}%"),
            ("mean answer length (words)", lambda f: f"{f['mean_words']:.0f}"),
            ("mean answer length (tokens)", lambda f: f"{f['mean_tokens']:.0f}"),
            ("quotes a demonstration word for word", lambda f: f"{100 * f['copy_rate']:.0f}%"),
            ("ended at EOS (not the limit)", lambda f: f"{100 * f['eos']:.0f}%"),
            ("text ends a sentence", lambda f: f"{100 * f['sentence_end']:.0f}%"),
            ("decoding time (s)", lambda f: f"{f['seconds']:.0f}")]
    for label, cell in rows:
        table.add_row(label, *(cell(f) for f in figures.values()))
    console.print(table)
    for q in SAMPLES:
        if q in qs:
            console.print(Text("\n" + q, style="bold"))
            for name, answers in results.items():
                console.print(Text.assemble((name, "cyan"), ": ", answers[qs.index(q)]["text"]), highlight=False)
    if args.json:
        args.json.write_text(json.dumps({"questions": qs, "load": load, "figures": figures,
                                         "answers": results}, indent=1, default=str))


if __name__ == "__main__":
    main()
