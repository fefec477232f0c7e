"""Retrieval: chrF++, the strategies that pick demonstrations, and the aligner that injects them."""
