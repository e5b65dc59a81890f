"""Toy tasks generated on the fly (each takes a seed) and corpus loaders that read from a path."""

from .toy import spirals

__all__ = ["spirals"]
