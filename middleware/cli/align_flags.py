"""Every command's alignment flags, generated from :class:`~middleware.options.AlignOptions`' fields.

A field's name gives the flag (``min_margin`` -> ``--min-margin``, plus its short ``flag`` where the
command has it free), its description the help, its default, bounds and choices the flag's; so a new
option (one field) is a flag of every command that takes alignment options, with nothing to edit here.

A command asks for them with :func:`align_flags` and receives one ``options`` argument::

    @app.command()
    @align_flags(help={"profile": "A user profile file (YAML or JSON)."})
    def demos(text: str = typer.Argument(...), options: AlignOptions = None): ...

A command may still declare a flag of an option itself (the evaluator's ``--strategy`` takes a list);
the generated one is then left out and the command handles its own.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
from typing import Any, Callable, Iterable, Mapping, Optional

import typer

from ..errors import InputError
from ..options import AlignOptions, option_fields

__all__ = ["align_flags", "flag_name"]

_TYPES = {"int": int, "number": float, "text": str}


def flag_name(name: str) -> str:
    """The long flag of option ``name``."""
    return "--" + name.replace("_", "-")


def _used_flags(params: Iterable[inspect.Parameter]) -> set[str]:
    used = set()
    for p in params:
        info = p.default
        used.update(d for d in (getattr(info, "param_decls", None) or ()) if isinstance(d, str))
    return used


def _option(f: dataclasses.Field, used: set[str], default: Any, help_text: str | None, unset: bool) -> Any:
    meta = f.metadata
    text = help_text or meta["description"]
    if meta["choices"] is not None:
        text = f"{text} One of: {', '.join(meta['choices']())}."
    decls = [flag_name(f.name)] + ([meta["flag"]] if meta.get("flag") and meta["flag"] not in used else [])
    bounds = {}
    if meta["kind"] in ("int", "number"):
        bounds = {"min": meta["minimum"], "max": meta["maximum"]}
    if unset and f.default is not None:
        # The flag overrides the config file only when given; its help still shows the default (rich markup).
        text = f"{text} \\[default: {f.default}]"
    return typer.Option(None if unset else default, *decls, help=text, show_default=not unset, **bounds)


def align_flags(*, exclude: Iterable[str] = (), defaults: Mapping[str, Any] | None = None,
                help: Mapping[str, str] | None = None, unset: bool = False) -> Callable[[Callable], Callable]:
    """Give a command a flag for every AlignOptions field it does not declare itself (nor ``exclude``).

    The command is called with ``options``: the :class:`AlignOptions` of those flags (validated: a bad
    value is one line and exit 2), or with ``unset=True`` a dict of only the flags that were given
    (for commands whose defaults come from elsewhere, as ``serve``'s from its config file).
    ``defaults`` and ``help`` replace a field's default and help text for this command.
    """
    defaults, help = dict(defaults or {}), dict(help or {})

    def deco(fn: Callable) -> Callable:
        sig = inspect.signature(fn)
        own = [p for p in sig.parameters.values() if p.name != "options"]
        # The command's own annotations, evaluated (cli modules use `from __future__ import annotations`).
        hints = {name: eval(a, fn.__globals__) if isinstance(a, str) else a  # noqa: S307 - our own source
                 for name, a in fn.__annotations__.items() if name not in ("options", "return")}
        used = _used_flags(own)
        added: list[inspect.Parameter] = []
        for f in option_fields():
            if f.name in exclude or f.name in sig.parameters:
                continue
            default = defaults.get(f.name, f.default)
            kind = _TYPES[f.metadata["kind"]]
            annotation = Optional[kind] if unset or default is None else kind
            added.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                                           default=_option(f, used, default, help.get(f.name), unset)))
            hints[f.name] = annotation
        names = [p.name for p in added]

        @functools.wraps(fn)
        def command(**kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name in names}
            if unset:
                return fn(options={k: v for k, v in values.items() if v is not None}, **kwargs)
            try:
                options = AlignOptions(**values)
            except InputError as e:
                print(f"selfalign: error: {e}", file=sys.stderr)
                raise typer.Exit(2)
            return fn(options=options, **kwargs)

        # Arguments first, then the alignment flags, then the command's own options (the --help order).
        arguments = [p for p in own if isinstance(p.default, typer.models.ArgumentInfo)]
        rest = [p for p in own if p not in arguments]
        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in arguments] + added + [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in rest]
        command.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: hints.get(p.name, p.annotation) for p in params}
        del command.__wrapped__  # typer must see the signature above, not the function's
        return command

    return deco
