r"""Saving at the save times: Tsit5's dense output inside each accepted step, and the
frozen state after a seed stopped.

A save time s_k inside an accepted step [s, s_next] gets the summary of
y(s_k) = y + Σ_j b_j(θ)·k_j, θ = (s_k − s)/(s_next − s), with diffrax's own Tsit5
interpolation polynomials b_j; every seed saves its own times (its `save_index` counts
the ones done).
"""

import diffrax
import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.numpy as jnp

from ..._custom_types import Array
from ._stepper import _stage_sum


class SaveGrid(eqx.Module):
    """The save times s_0 < … < s_{T−1}, in solver time, with the save loop of a step.

    `ss_pad` is the grid padded with +inf and looked up at min(idx, T): the lookup then
    depends on the save loop's counter even when there is one save time. (With s_0
    fixed, XLA hoists the dense output and the summary, a gradient evaluation, out of
    the save loop into every step, accepted or not.) A seed whose index reaches T meets
    +inf: it has nothing left to save.
    """

    ss_pad: Array
    n_ts: int = eqx.field(static=True)

    def __init__(self, ss):
        self.n_ts = ss.shape[0]
        self.ss_pad = jnp.concatenate([ss, jnp.full((1,), jnp.inf, ss.dtype)])

    def empty(self, summary_shape, n_seeds: int):
        """Summary buffers (S, T, ...) filled with +inf until saved."""
        return jax.tree.map(
            lambda sd: jnp.full((n_seeds, self.n_ts) + sd.shape, jnp.inf, sd.dtype), summary_shape
        )

    def save_step(
        self, summary, rows, n_seeds, *, accept, y, sprev, snext, ws, gs, save_index, saved
    ):
        """Save every time inside the accepted steps [sprev, snext] (`accept`, (B,)) from
        y, with the attempt's stage weights `ws` and gradients `gs`. `rows` (B,): the
        seed in each slot (`n_seeds`: none); `summary`: one seed's `Problem.summary`.
        Returns the new (save_index, saved)."""
        ss_pad, n_ts = self.ss_pad, self.n_ts
        dtype = ss_pad.dtype

        def needs_save(idx):
            return accept & (ss_pad[jnp.minimum(idx, n_ts)] <= snext)

        def save_cond(sv):
            idx, _ = sv
            return jnp.any(needs_save(idx))

        def save_body(sv):
            idx, saved = sv
            need = needs_save(idx)
            j = jnp.minimum(idx, n_ts - 1)
            # finite where no save is due (interpolating at +inf would put NaNs into the
            # reverse pass even though `put` discards the value)
            s_save = jnp.where(need, ss_pad[jnp.minimum(idx, n_ts)], sprev)

            # Tsit5's dense output y0 + Σ_j b_j(θ)·k_j, with diffrax's own polynomials
            # b_j(θ): the interpolation is linear in (y0, k), so evaluating it on y0 = 0,
            # k = I₇ gives the weights. The sum is then one fused pass over y and the raw
            # gradients that depends on the save time: XLA cannot hoist it out of this
            # loop (it would hoist a stacked (B, 7, ...) stage array, at the cost of a
            # 7-array copy per step).
            eye = jnp.eye(7, dtype=dtype)

            def weights(a, b, s_):
                return diffrax.Tsit5.interpolation_cls(
                    t0=a, t1=b, y0=jnp.zeros(7, dtype), y1=jnp.zeros(7, dtype), k=eye
                ).evaluate(s_)

            bw = jax.vmap(weights)(sprev, snext, s_save)  # (B, 7)
            y_save = _stage_sum(y, [1.0] * 7, [bw[:, j] * ws[j] for j in range(7)], gs)
            new = jax.vmap(summary)(y_save)
            at = jnp.where(need, rows, n_seeds)  # n_seeds: dropped

            def put(buf, val):
                return buf.at[at, j].set(val, mode="drop")

            saved = jax.tree.map(put, saved, new)
            return idx + need.astype(idx.dtype), saved

        return eqxi.while_loop(
            save_cond, save_body, (save_index, saved), max_steps=n_ts, kind="checkpointed"
        )


def freeze_after_stop(saved, ts, t_final, num_steps, final_summary):
    """Save times after a seed's stop (t_k > `t_final`) get its final summary; so do all
    of a seed that stopped at t = 0 (no step). `saved` leaves (S, T, ...), `ts` (T,)."""
    fill = (ts[None, :] > t_final[:, None]) | (num_steps == 0)[:, None]  # (S, T)
    return jax.tree.map(
        lambda s, f: jnp.where(fill.reshape(fill.shape + (1,) * (s.ndim - 2)), f[:, None], s),
        saved,
        final_summary,
    )
