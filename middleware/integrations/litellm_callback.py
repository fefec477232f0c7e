"""Self-alignment inside a LiteLLM Proxy, as a pre-call hook.

In the proxy's ``config.yaml``::

    litellm_settings:
      callbacks: middleware.litellm_callback.selfalign_callback

(LiteLLM resolves ``module.attribute`` with importlib, so ``middleware`` must be
importable by the proxy: installed, or on ``PYTHONPATH``.)

The country of a request, field by field, from the first place that sets it:

1. the request body's ``selfalign`` object (``extra_body={"selfalign": {...}}``; removed before the call),
2. the request's ``metadata``: ``selfalign_<option>`` keys (``selfalign_country``, ``selfalign_k``, ...),
   or a ``selfalign`` object,
3. the virtual key's metadata (``user_api_key_dict.metadata``), same keys,
4. the callback's defaults (``SelfAlignCallback(country=..., ...)``), then ``$SELFALIGN_COUNTRY``,
   ``$SELFALIGN_LANGUAGE`` (the options marked ``env`` in :mod:`middleware.options`).

``country: none`` turns injection off. Profiles are chosen by the names given to
:class:`SelfAlignCallback` (``profiles={"me": "me.yaml"}``), never by a path from a request.
The number of demonstrations injected is left in ``metadata["selfalign_demonstrations"]``, and the
relevance decision (``{"inject", "score", "threshold", "reason"}``) in ``metadata["selfalign_relevance"]``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from ..data.registry import ProfileRegistry
from ..errors import SelfAlignError
from ..models.provider import import_litellm
from ..options import OPTION_NAMES, AlignOptions, env_names, merge, parse
from ..retrieval.aligner import SelfAligner
from ..retrieval.demonstration import Selection
from ..retrieval.cache import AlignerCache
from ..retrieval.relevance import ALIGNMENT_OFF

__all__ = ["SelfAlignCallback", "selfalign_callback"]

import_litellm()  # also registers selfalign's local/ provider, so the proxy can serve local/gemma-3-270m
from litellm.integrations.custom_logger import CustomLogger  # noqa: E402


def _from_mapping(meta: Any, where: str) -> dict:
    """selfalign settings kept in a metadata mapping: a ``selfalign`` object and/or ``selfalign_<option>`` keys."""
    if not isinstance(meta, Mapping):
        return {}
    nested = meta.get("selfalign")
    out = parse({k: v for k, v in nested.items() if k in OPTION_NAMES}, f"{where}.selfalign") \
        if isinstance(nested, Mapping) else {}
    flat = {name: meta[f"selfalign_{name}"] for name in OPTION_NAMES if meta.get(f"selfalign_{name}") is not None}
    out.update(parse(flat, where))
    return out


class SelfAlignCallback(CustomLogger):
    """A LiteLLM ``CustomLogger`` whose ``async_pre_call_hook`` injects WVS demonstrations.

    Keyword arguments named like an :class:`~middleware.options.AlignOptions` field (country,
    language, k, strategy, ...) are the defaults; the others go to ``CustomLogger``.
    """

    def __init__(self, profiles: Mapping[str, str | Path] | None = None, **kwargs: Any):
        defaults = {name: kwargs.pop(name) for name in OPTION_NAMES if name in kwargs}
        super().__init__(**kwargs)
        self.defaults = {k: v for k, v in defaults.items() if v is not None}
        AlignOptions(**self.defaults)  # bad defaults fail here, not per request
        self.aligners = AlignerCache(ProfileRegistry(profiles, hint="give SelfAlignCallback(profiles={name: file})"))

    def _defaults(self) -> dict:
        # Read at call time: the proxy may load its environment after importing callbacks.
        env = {name: os.environ[var] for name, var in env_names() if os.environ.get(var)}
        return {**env, **self.defaults}

    def settings(self, data: dict, user_api_key_dict: Any) -> AlignOptions | None:
        """The merged, normalised choice for a request; None means no injection."""
        body = parse(data.pop("selfalign", None), "selfalign")
        # Chat routes keep the body's metadata in "metadata", some newer routes in "litellm_metadata".
        layers = [body, _from_mapping(data.get("metadata"), "metadata"),
                  _from_mapping(data.get("litellm_metadata"), "litellm_metadata"),
                  _from_mapping(getattr(user_api_key_dict, "metadata", None), "key metadata")]
        return self.aligners.key(merge(*layers, defaults=self._defaults()))

    async def aligner(self, key: AlignOptions) -> SelfAligner:
        return await self.aligners.aget(key)

    async def async_pre_call_hook(self, user_api_key_dict: Any, cache: Any, data: dict, call_type: Any) -> dict:
        messages = data.get("messages")
        if not isinstance(messages, list):
            return data  # embeddings, images, ...: nothing to align
        try:
            key = self.settings(data, user_api_key_dict)
            demos: list = Selection([], ALIGNMENT_OFF)
            if key is not None:
                data["messages"], demos = (await self.aligner(key)).align_with_demonstrations(messages)
        except SelfAlignError as e:
            # LiteLLM turns an HTTPException from a hook into that status for the client.
            from fastapi import HTTPException

            raise HTTPException(status_code=400, detail={"error": str(e), "param": e.param}) from None
        metadata = data.get("metadata")
        if isinstance(metadata, dict):
            metadata["selfalign_demonstrations"] = len(demos)
            metadata["selfalign_relevance"] = demos.relevance.to_dict()
        return data


selfalign_callback = SelfAlignCallback()
"""The instance a LiteLLM config names: ``callbacks: middleware.litellm_callback.selfalign_callback``."""
