"""Probe prompts as in the paper: fill the blank with one of two options, optionally after demonstrations.

One format serves base and chat models alike: a short instruction, then each demonstration
as a solved item, then the test item ending in ``Answer:``. For a base model the option is
then the natural continuation (exact mode scores ``" <option>"`` right there); a chat model
gets the same text as its user message.

Option order is random but seeded per probe, and the same in every condition, so that the
zero-shot and aligned prompts of a probe differ only by the demonstrations. A demonstration
shows its probe with that probe's own seeded order and the country's majority answer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from ..data.probes import Probe

__all__ = ["ZERO_SHOT", "INSTRUCTION", "EvalPrompt", "option_order", "probe_block", "build_prompt", "reshuffle"]

ZERO_SHOT = "zero-shot"
"""The condition without demonstrations (the baseline every strategy is compared with)."""

# The scaffold stays English in every language, as a fixed frame around the probe text.
INSTRUCTION = "Fill in the blank with one of the two options. Answer with the option only."


@dataclass(frozen=True)
class EvalPrompt:
    text: str
    options: tuple[str, str]
    """The probe's options in probe order (distributions are always reported in this order)."""
    order: tuple[int, int]
    """Display order: ``order[0]`` is the index of the option listed first."""
    demo_ids: tuple[str, ...] = field(default=())
    chat: tuple[dict, ...] | None = None
    """The product's request (``--injection system``): the messages as sent; None: ``text`` is the prompt."""

    def messages(self) -> list[dict]:
        return list(self.chat) if self.chat is not None else [{"role": "user", "content": self.text}]

    def with_messages(self, messages: list[dict], demo_ids: tuple[str, ...] = ()) -> "EvalPrompt":
        """This probe asked as a chat request: ``text`` stays the user message, ``messages`` what is sent."""
        return replace(self, chat=tuple(messages), demo_ids=demo_ids)

    def continuations(self, rendered: str | None = None) -> list[str]:
        """What exact mode scores after the prompt: each option with its separating space, except after a
        ``rendered`` chat prompt that ends in whitespace (a template's "assistant\n"), where the answer
        starts bare."""
        if rendered is not None and rendered[-1:].isspace():
            return list(self.options)
        return [" " + o for o in self.options]


def option_order(probe_id: str, seed: int) -> tuple[int, int]:
    # A string seed hashes deterministically (unlike hash()), so orders survive restarts.
    return (1, 0) if random.Random(f"{seed}:order:{probe_id}").random() < 0.5 else (0, 1)


def probe_block(probe: Probe, order: tuple[int, int], answer: int | None = None) -> str:
    shown = " / ".join(probe.options[i] for i in order)
    text = f"Statement: {probe.question}\nOptions: {shown}\nAnswer:"
    return text if answer is None else f"{text} {probe.options[answer]}"


def build_prompt(probe: Probe, seed: int, demonstrations: list[tuple[Probe, int]] = (),
                 instruction: str | None = None) -> EvalPrompt:
    """The prompt for ``probe``; ``demonstrations`` are (probe, majority option) pairs, in prompt order.

    ``instruction`` (a strategy's, e.g. cultural prompting) goes first, before the task instruction.
    """
    blocks = ([instruction] if instruction else []) + [INSTRUCTION]
    blocks += [probe_block(p, option_order(p.id, seed), answer) for p, answer in demonstrations]
    order = option_order(probe.id, seed)
    blocks.append(probe_block(probe, order))
    return EvalPrompt("\n\n".join(blocks), tuple(probe.options), order, tuple(p.id for p, _ in demonstrations))


def reshuffle(items: list, seed: int, probe_id: str, strategy: str, index: int) -> list:
    """A seeded permutation of the demonstrations that differs from the original order when it can."""
    rng = random.Random(f"{seed}:shuffle:{strategy}:{probe_id}:{index}")
    out = list(items)
    if len(out) < 2:
        return out
    for _ in range(100):
        rng.shuffle(out)
        if out != list(items):
            break
    return out
