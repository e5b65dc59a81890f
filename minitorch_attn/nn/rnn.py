"""Gated recurrent units (the encoder and decoder of Bahdanau attention), built from autograd ops.

Torch's parameter names, shapes, gate order and equations, so a torch GRU's `state_dict()` loads
as is. With the gates stacked in the order (r, z, n) along the first axis of the weights:

    r  = σ(W_ir x + b_ir + W_hr h + b_hr)            reset gate
    z  = σ(W_iz x + b_iz + W_hz h + b_hz)            update gate
    n  = tanh(W_in x + b_in + r * (W_hn h + b_hn))   candidate state
    h' = (1 - z) * n + z * h

weight_ih: (3H, input_size), weight_hh: (3H, H), bias_ih, bias_hh: (3H,), all U(-1/√H, 1/√H).

Convention: `GRU` defaults to `batch_first=True` (input (B, T, input_size)), as every module in this
library does; torch's default is `batch_first=False`, so pass it explicitly when you compare.
"""

from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from ..autograd.ops import concatenate, stack
from ..functional.rnn import gru_step
from .layers import uniform
from .module import Module


class GRUCell(Module):
    """One step: `cell(x, h)` with x (B, input_size) or (input_size,), h of the matching shape with
    hidden_size features (zeros when omitted); returns the new h."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 rng: np.random.Generator | None = None, dtype=np.float32):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        k = 1 / math.sqrt(hidden_size)
        self.weight_ih = uniform(rng, k, (3 * hidden_size, input_size), dtype)
        self.weight_hh = uniform(rng, k, (3 * hidden_size, hidden_size), dtype)
        self.bias_ih = uniform(rng, k, (3 * hidden_size,), dtype) if bias else None
        self.bias_hh = uniform(rng, k, (3 * hidden_size,), dtype) if bias else None

    def forward(self, x, h=None):
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            n = self.input_size
            raise ValueError(f"GRUCell(input_size={n}, hidden_size={self.hidden_size}) expects x of shape "
                             f"(B, {n}) or ({n},); got {tuple(x.shape)}")
        want = x.shape[:-1] + (self.hidden_size,)
        if h is None:
            h = np.zeros(want, dtype=self.weight_hh.dtype)
        elif tuple(h.shape) != want:
            raise ValueError(f"GRUCell: for x of shape {tuple(x.shape)} the state h must have shape {want}; "
                             f"got {tuple(h.shape)}")
        gi = F.linear(x, self.weight_ih, self.bias_ih)
        return gru_step(gi, h, self.weight_hh.transpose(0, 1), self.bias_hh)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias_ih is not None else ", bias=False")


class GRU(Module):
    """A multi-layer, optionally bidirectional GRU over whole sequences: `output, h_n = gru(x, h0)`.

    x:      (B, T, input_size) when batch_first (our default), (T, B, input_size) otherwise,
            or (T, input_size) unbatched
    h0:     (num_layers * D, B, hidden_size), zeros when omitted (D = 2 if bidirectional else 1)
    output: (B, T, D * hidden_size) when batch_first: the last layer's states, forward then reverse
            direction concatenated on the last axis
    h_n:    (num_layers * D, B, hidden_size): the final state of each layer and direction, in the
            order l0, l0_reverse, l1, ...; the reverse direction's final state is the one at t = 0

    Parameters per layer k: weight_ih_l{k}, weight_hh_l{k}, bias_ih_l{k}, bias_hh_l{k}, and the same
    with a `_reverse` suffix when bidirectional. Layer k > 0 reads D * hidden_size features.
    `dropout` is applied to the outputs of every layer but the last, in training mode (as torch).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = True, dropout: float = 0.0, bidirectional: bool = False,
                 rng: np.random.Generator | None = None, dtype=np.float32):
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"GRU: dropout must be in [0, 1); got {dropout}")
        self.bias, self.batch_first, self.bidirectional = bias, batch_first, bidirectional
        self.dropout, self.rng = dropout, rng
        D, k = (2 if bidirectional else 1), 1 / math.sqrt(hidden_size)
        for layer in range(num_layers):
            n_in = input_size if layer == 0 else D * hidden_size
            for sfx in self._suffixes(layer):
                setattr(self, "weight_ih" + sfx, uniform(rng, k, (3 * hidden_size, n_in), dtype))
                setattr(self, "weight_hh" + sfx, uniform(rng, k, (3 * hidden_size, hidden_size), dtype))
                setattr(self, "bias_ih" + sfx, uniform(rng, k, (3 * hidden_size,), dtype) if bias else None)
                setattr(self, "bias_hh" + sfx, uniform(rng, k, (3 * hidden_size,), dtype) if bias else None)

    def _suffixes(self, layer: int) -> list[str]:
        return [f"_l{layer}"] + ([f"_l{layer}_reverse"] if self.bidirectional else [])

    def forward(self, x, h0=None):
        D, H, L = (2 if self.bidirectional else 1), self.hidden_size, self.num_layers
        layout = "(B, T, input_size)" if self.batch_first else "(T, B, input_size)"
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
            n = self.input_size
            raise ValueError(f"GRU(input_size={n}, hidden_size={H}) expects x of shape {layout} with "
                             f"input_size={n} (or (T, input_size) unbatched); got {tuple(x.shape)}")
        unbatched = x.ndim == 2
        if unbatched:
            x = x.reshape(1, *x.shape)
        elif not self.batch_first:
            x = x.transpose(0, 1)  # work in (B, T, features)
        B, T = x.shape[0], x.shape[1]
        if T == 0:
            raise ValueError(f"GRU: the input {tuple(x.shape)} has no time steps")
        if h0 is not None:
            want = (L * D, H) if unbatched else (L * D, B, H)
            if tuple(h0.shape) != want:
                raise ValueError(f"GRU: h0 must have shape {want} (num_layers * num_directions, "
                                 f"{'' if unbatched else 'B, '}hidden_size) for x of shape {tuple(x.shape)}; "
                                 f"got {tuple(h0.shape)}")
            if unbatched:
                h0 = h0.reshape(L * D, 1, H)

        layer_input, finals = x, []
        for layer in range(L):
            outputs = []
            for d, sfx in enumerate(self._suffixes(layer)):
                w_ih, w_hh = getattr(self, "weight_ih" + sfx), getattr(self, "weight_hh" + sfx)
                b_ih, b_hh = getattr(self, "bias_ih" + sfx), getattr(self, "bias_hh" + sfx)
                gi = F.linear(layer_input, w_ih, b_ih)  # (B, T, 3H): every time step in one matmul
                w_hh_t = w_hh.transpose(0, 1)
                h = h0[layer * D + d] if h0 is not None else np.zeros((B, H), dtype=w_hh.dtype)
                states = [None] * T
                for t in (range(T) if d == 0 else reversed(range(T))):
                    h = gru_step(gi[:, t], h, w_hh_t, b_hh)
                    states[t] = h
                outputs.append(stack(states, axis=1))
                finals.append(h)
            layer_input = outputs[0] if D == 1 else concatenate(outputs, axis=-1)
            if self.dropout > 0 and self.training and layer < L - 1:
                layer_input = F.dropout(layer_input, self.dropout, training=True, rng=self.rng)

        output, h_n = layer_input, stack(finals, axis=0)
        if unbatched:
            return output.reshape(T, D * H), h_n.reshape(L * D, H)
        return (output if self.batch_first else output.transpose(0, 1)), h_n

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        s += f", batch_first={self.batch_first}"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s
