"""The stable dotted path for LiteLLM Proxy configs: ``callbacks: middleware.litellm_callback.selfalign_callback``.

The callback lives in :mod:`middleware.integrations.litellm_callback`; configs written
against this path keep working whatever the package layout becomes.
"""

from .integrations.litellm_callback import SelfAlignCallback, selfalign_callback

__all__ = ["SelfAlignCallback", "selfalign_callback"]
