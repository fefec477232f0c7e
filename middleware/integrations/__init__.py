"""Integrations with existing chatbots: the OpenAI client wrapper and the LiteLLM Proxy callback."""
