"""Numba kernels of the training step, outside attention: GELU, LayerNorm, the embedding backward and Adam's
update, and `threads` (the Numba settings every kernel of ours applies before it is compiled).

Nothing here is imported by `import minitorch_attn`: `autograd/fused.py` and `optim.py` import a kernel on
first use, and fall back to NumPy without Numba.
"""
