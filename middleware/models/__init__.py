"""Model runtime: the embedded local model and the litellm ``local/`` provider that serves it."""

__all__: list[str] = []  # the modules are the API; nothing is re-exported here
