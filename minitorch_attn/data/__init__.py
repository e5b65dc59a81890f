"""Toy tasks generated on the fly (each takes a seed) and corpus loaders that read from a path."""

from .retrieval import Retrieval, two_needle_retrieval
from .sequences import BOS, EOS, PAD, SeqBatch, copy_task, decode_tokens, reversal_task
from .toy import spirals

__all__ = ["BOS", "EOS", "PAD", "SeqBatch", "copy_task", "decode_tokens", "reversal_task", "spirals"]
__all__ += ["Retrieval", "two_needle_retrieval"]
