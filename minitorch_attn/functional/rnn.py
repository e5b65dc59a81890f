"""The recurrent steps of lesson 03 as functions: one GRU update (`gru_step`, which nn.GRUCell and nn.GRU
call) and one step of Bahdanau's attentive decoder (`bahdanau_step`, Exercise 3.2; nn.seq2seq.Decoder calls
it)."""

from __future__ import annotations

from ..autograd.ops import matmul


def gru_step(gi, h, w_hh_t, b_hh):
    """One GRU update. `gi` = x W_ihᵀ + b_ih, shape (B, 3H), computed beforehand (for a whole sequence
    at once in `GRU`); `h` is the previous state (B, H); `w_hh_t` is weight_hhᵀ, shape (H, 3H)."""
    H = w_hh_t.shape[0]
    gh = matmul(h, w_hh_t)
    if b_hh is not None:
        gh = gh + b_hh
    r = (gi[..., :H] + gh[..., :H]).sigmoid()
    z = (gi[..., H : 2 * H] + gh[..., H : 2 * H]).sigmoid()
    n = (gi[..., 2 * H :] + r * gh[..., 2 * H :]).tanh()
    return (1 - z) * n + z * h


def bahdanau_step(attend, gi_emb, state, w_ctx_t, w_hh_t, b_hh):
    """One step of Bahdanau's decoder (Exercise 3.2): attend with the PREVIOUS state, then update the GRU.

        attend(state) -> (context (B, enc_dim), weights (B, L)): the attention over the encoder states,
                         with the state s_{i-1} (B, H) as the query
        gi_emb: (B, 3H)  the embedding's share of the GRU input gates, W_ih[:, :E] emb(y_{i-1}) + b_ih
        w_ctx_t: (enc_dim, 3H)  the context's share of the input weights, transposed (W_ih[:, E:]ᵀ)
        w_hh_t: (H, 3H), b_hh: (3H,)  the recurrent weights (transposed) and bias

    The GRU reads [emb(y_{i-1}); c_i], so its input gates are gi_emb + c_i W_ih[:, E:]ᵀ; then
    s_i = gru_step(gates, s_{i-1}, w_hh_t, b_hh). Returns (s_i, c_i, weights).
    """
    ### BEGIN SOLUTION
    context, weights = attend(state)
    gi = gi_emb + matmul(context, w_ctx_t)
    state = gru_step(gi, state, w_hh_t, b_hh)
    ### END SOLUTION
    return state, context, weights
