"""Toy tasks generated on the fly (each takes a seed) and corpus loaders that read from a path."""

from .gp_curves import GPBatch, gp_curves, rbf_kernel  # lesson 15
from .graphs import Graph, sbm_graph  # lesson 15
from .hopfield_tasks import (
    Bags,
    clustered_patterns,
    corrupt,
    flip_bits,
    glyphs,
    mask_half,
    mil_bags,
    random_patterns,
)
from .max_retrieval import MaxRetrieval, max_retrieval  # lesson 12
from .needle import NeedleBatch, decode_needle, key_position, needle_lm_batch, needle_task, needle_vocab_size
from .retrieval import Retrieval, two_needle_retrieval
from .sequences import BOS, EOS, PAD, SeqBatch, copy_task, decode_tokens, reversal_task
from .text import CharCorpus, CorpusNotFound, char_corpus, load_char_corpus  # lesson 09
from .toy import spirals
from .two_hop import FactBatch, fact_lm_batch, fact_task, fact_vocab_size  # lesson 16

__all__ = ["BOS", "EOS", "PAD", "SeqBatch", "copy_task", "decode_tokens", "reversal_task", "spirals"]
__all__ += ["Retrieval", "two_needle_retrieval"]
__all__ += ["CharCorpus", "CorpusNotFound", "char_corpus", "load_char_corpus"]  # lesson 09
__all__ += ["NeedleBatch", "decode_needle", "key_position", "needle_lm_batch", "needle_task",
            "needle_vocab_size"]  # lesson 09, needle in a haystack
__all__ += ["Bags", "clustered_patterns", "corrupt", "flip_bits", "glyphs", "mask_half", "mil_bags",
            "random_patterns"]  # lessons 07-08
__all__ += ["MaxRetrieval", "max_retrieval"]  # lesson 12
__all__ += ["GPBatch", "Graph", "gp_curves", "rbf_kernel", "sbm_graph"]  # lesson 15
__all__ += ["FactBatch", "fact_lm_batch", "fact_task", "fact_vocab_size"]  # lesson 16
