"""Integrations with existing chatbots: the OpenAI client wrapper and the LiteLLM Proxy callback."""

__all__: list[str] = []  # the modules are the API; nothing is re-exported here
