"""Retrieval: chrF++, the strategies that pick demonstrations, and the aligner that injects them."""

__all__: list[str] = []  # the modules are the API; nothing is re-exported here
