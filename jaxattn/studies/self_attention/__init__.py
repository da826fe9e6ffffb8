"""Stages about Transformer self-attention: summaries of the maps, head-level interventions and
planted shortcuts."""
