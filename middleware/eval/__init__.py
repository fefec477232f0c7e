"""Offline evaluator reproducing the probe experiments of Choenni & Shutova (2024), and going beyond them.

``selfalign eval`` is the command line; in Python::

    from middleware.eval import EvalConfig, run_eval, write_outputs
    run = run_eval(EvalConfig(pairs=[("en", "USA")], strategies=["chrf"], limit=10))
    write_outputs(run, Path("out"))

Modules: :mod:`.prompts` (the probe prompt), :mod:`.parse` (free text -> option),
:mod:`.metrics` (pure measures), :mod:`.backends` (local and litellm models), :mod:`.cache`
(SQLite response cache), :mod:`.config` (what to run), :mod:`.records` (rows and the run),
:mod:`.runner` (the experiment), :mod:`.summary` (aggregates) and :mod:`.report` (tables,
figures, report.md).
"""

from ..errors import ModelCallError
from .backends import Backend, LiteLLMBackend, LocalBackend, Request, get_backend
from .cache import ResponseCache, default_cache_path
from .parse import parse_answer
from .report import print_tables, write_outputs
from .config import EvalConfig, formats_arg, strategies_arg
from .records import EvalRun
from .runner import resolve_pairs, run_eval

__all__ = ["EvalConfig", "EvalRun", "run_eval", "resolve_pairs", "strategies_arg", "formats_arg", "write_outputs",
           "print_tables",
           "Backend", "LocalBackend", "LiteLLMBackend", "ModelCallError", "Request", "get_backend", "ResponseCache",
           "default_cache_path", "parse_answer"]
