"""Stages about Transformer self-attention and the tests run on pretrained encoders."""
