"""Self-alignment inside a LiteLLM Proxy, as a pre-call hook.

In the proxy's ``config.yaml``::

    litellm_settings:
      callbacks: middleware.litellm_callback.selfalign_callback

(LiteLLM resolves ``module.attribute`` with importlib, so ``middleware`` must be
importable by the proxy: installed, or on ``PYTHONPATH``.)

The country of a request, field by field, from the first place that sets it:

1. the request body's ``selfalign`` object (``extra_body={"selfalign": {...}}``; removed before the call),
2. the request's ``metadata``: ``selfalign_country`` / ``selfalign_language`` / ``selfalign_profile``,
   or a ``selfalign`` object,
3. the virtual key's metadata (``user_api_key_dict.metadata``), same keys,
4. the callback's defaults: ``$SELFALIGN_COUNTRY``, ``$SELFALIGN_LANGUAGE``.

``country: none`` turns injection off. Profiles are chosen by the names given to
:class:`SelfAlignCallback` (``profiles={"me": "me.yaml"}``), never by a path from a request.
The number of demonstrations injected is left in ``metadata["selfalign_demonstrations"]``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from ..retrieval.aligner import SelfAligner
from ..errors import SelfAlignError
from ..models.provider import import_litellm

__all__ = ["SelfAlignCallback", "selfalign_callback"]

_FIELDS = ("country", "language", "k", "strategy", "profile")
_OFF = frozenset({"none", "off"})

import_litellm()  # also registers selfalign's local/ provider, so the proxy can serve local/gemma-3-270m
from litellm.integrations.custom_logger import CustomLogger  # noqa: E402


def _from_mapping(meta: Any) -> dict:
    """selfalign settings kept in a metadata mapping: a ``selfalign`` object and/or ``selfalign_<field>`` keys."""
    if not isinstance(meta, Mapping):
        return {}
    out = {}
    nested = meta.get("selfalign")
    if isinstance(nested, Mapping):
        out.update({f: nested[f] for f in _FIELDS if nested.get(f) is not None})
    for f in _FIELDS:
        if meta.get(f"selfalign_{f}") is not None:
            out[f] = meta[f"selfalign_{f}"]
    return out


class SelfAlignCallback(CustomLogger):
    """A LiteLLM ``CustomLogger`` whose ``async_pre_call_hook`` injects WVS demonstrations."""

    def __init__(self, country: str | None = None, language: str | None = None, k: int = 5, strategy: str = "chrf",
                 profiles: Mapping[str, str | Path] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.defaults = {"country": country, "language": language, "k": k, "strategy": strategy}
        self._profiles: dict[str, Any] = {}
        for name, path in (profiles or {}).items():
            from ..data.user_profile import load_user_profile

            self._profiles[name] = load_user_profile(path)
        self._aligners: dict[tuple, SelfAligner] = {}

    def _default(self, field: str) -> Any:
        if self.defaults.get(field) is not None:
            return self.defaults[field]
        # Read at call time: the proxy may load its environment after importing callbacks.
        return os.environ.get(f"SELFALIGN_{field.upper()}") if field in ("country", "language") else None

    def settings(self, data: dict, user_api_key_dict: Any) -> dict | None:
        """The merged choice for a request; None means no injection."""
        body = data.pop("selfalign", None)
        if body is not None and not isinstance(body, Mapping):
            raise SelfAlignError("selfalign must be an object with country, language, k, strategy, profile",
                                 param="selfalign")
        # Chat routes keep the body's metadata in "metadata", some newer routes in "litellm_metadata".
        layers = [_from_mapping({"selfalign": body}), _from_mapping(data.get("metadata")),
                  _from_mapping(data.get("litellm_metadata")),
                  _from_mapping(getattr(user_api_key_dict, "metadata", None))]
        merged: dict[str, Any] = {}
        for f in _FIELDS:
            merged[f] = next((layer[f] for layer in layers if f in layer), None)
            if merged[f] is None:
                merged[f] = self._default(f)
        country = merged["country"]
        if isinstance(country, str) and country.strip().lower() in _OFF:
            return None
        if country is None and merged["profile"] is None:
            return None
        return merged

    def aligner(self, settings: dict) -> SelfAligner:
        key = tuple(str(settings[f]) for f in _FIELDS)
        aligner = self._aligners.get(key)
        if aligner is None:
            profile = None
            if settings["profile"] is not None:
                name = str(settings["profile"])
                if name not in self._profiles:
                    from ..errors import ProfileError

                    raise ProfileError(f"unknown profile {name!r}: registered profiles are "
                                       f"{', '.join(sorted(self._profiles)) or 'none'}")
                profile = self._profiles[name]
            k = settings["k"]
            if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 100:
                raise SelfAlignError("selfalign k must be an integer from 1 to 100", param="k")
            aligner = SelfAligner(country=None if profile is not None else settings["country"],
                                  language=settings["language"], k=k, strategy=str(settings["strategy"]),
                                  profile=profile)
            if len(self._aligners) >= 256:  # bounded: keys can come from requests
                self._aligners.clear()
            self._aligners[key] = aligner
        return aligner

    async def async_pre_call_hook(self, user_api_key_dict: Any, cache: Any, data: dict, call_type: Any) -> dict:
        messages = data.get("messages")
        if not isinstance(messages, list):
            return data  # embeddings, images, ...: nothing to align
        try:
            settings = self.settings(data, user_api_key_dict)
            demos: list = []
            if settings is not None:
                data["messages"], demos = self.aligner(settings).align_with_demonstrations(messages)
        except SelfAlignError as e:
            # LiteLLM turns an HTTPException from a hook into that status for the client.
            from fastapi import HTTPException

            raise HTTPException(status_code=400, detail={"error": str(e), "param": e.param}) from None
        metadata = data.get("metadata")
        if isinstance(metadata, dict):
            metadata["selfalign_demonstrations"] = len(demos)
        return data


selfalign_callback = SelfAlignCallback()
"""The instance a LiteLLM config names: ``callbacks: middleware.litellm_callback.selfalign_callback``."""
