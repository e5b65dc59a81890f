"""Attention kernels and the streaming softmax pieces they are built from."""

from .online import merge_normalisers, online_normaliser, online_softmax

__all__ = ["merge_normalisers", "online_normaliser", "online_softmax"]
