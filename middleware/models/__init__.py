"""Model runtime: the embedded local model and the litellm ``local/`` provider that serves it."""
