"""Evaluation: running a trained model on a task and scoring it.

    needle.py          needle_grid, task_grid, SymbolCountBaseline (lesson 09, needle in a haystack)
    two_hop.py         two_hop_grid (lesson 16)
    anatomy.py         attention_maps: a GPT's attention weights, every layer and head (lesson 16)
    seq2seq.py         evaluate, token_accuracy (lessons 03-04)
    neural_process.py  context_errors (lesson 15)

Import from the file (`from minitorch_attn.evaluation.needle import needle_grid`); `import minitorch_attn` does
not import this package.
"""
