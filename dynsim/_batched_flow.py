r"""Gradient flow for a whole batch of seeds in one adaptive stepping loop.

`GradientFlow.run` solves one seed with `diffrax.diffeqsolve`; `vmap` of it turns the
solver's `while_loop` into a batched loop whose every step pays for selects over the
whole solver state (measured: ~22 µs per gradient evaluation of overhead for a null vector
field). `run_batched` instead runs ONE loop over the batch and treats the seed axis
explicitly: each seed has its own time, step size, PID controller state, accept/reject
decision, save index and status, while the vector field is evaluated for all seeds at
once (`vmap` of the per-seed gradient: batched matrix products).

The loop works on a fixed number of slots (`GradientFlow.block_size`), not on all seeds:
when a slot's seed stops, its final state is scattered into the output arrays at its
seed index and the slot is loaded with the next waiting seed's initial state (all
initial states, step sizes and first gradients are computed up front, in one batch;
at most max(2, ⌈B/16⌉) seeds are loaded per iteration, by an in-place scatter).
Step counts differ between seeds (benchmark W1: 49–106, median 77); with fixed blocks,
a block ran until its slowest seed stopped while the finished ones were computed and
masked (17 % of W1's evaluations with blocks of 32). The per-seed arithmetic
does not depend on the slot, so a seed's result is the same with any number of slots
(bitwise where the batched matmul kernels round the same, which the tests check).

Semantics follow diffrax (`diffeqsolve` with `Tsit5`, `PIDController`, `SaveAt(ts=...)`,
a boolean `Event` and no root finder):

- the initial step size is `GradientFlow.initial_step` (Hairer's heuristic, as for the
  per-seed path);
- a step of Tsit5 (FSAL: 6 new gradient evaluations per step attempt);
- the error control is `PIDController.adapt_step_size` itself, applied per seed: error
  norm RMS(err / (atol + rtol·max(|y0|, |y1|))), accept iff < 1, same factor limits.
  For large states the scaled error is computed in one fused pass (`_error_ratio`, NaN
  cases delegated to diffrax's own rule) and handed to the controller, which then
  decides the step;
- `tnext` is clipped to `t1` exactly as diffrax does (within 100 ULP);
- save times are filled by Tsit5's dense output over the accepted step;
- the stop condition is checked on the state after every step attempt (the event
  fires on the step's end, `t_final` = that time); `max_steps` counts attempts.

The loss at the end of a step is obtained from the FSAL stage (`value_and_grad`), so
checking `stop_loss` costs no extra gradient evaluation.

The loops are `equinox.internal.while_loop(kind="checkpointed")`, as in diffrax's
`RecursiveCheckpointAdjoint`: reverse-mode differentiable with bounded memory and a plain
`lax.while_loop` when not differentiated. Forward mode (`jax.jvp`, `jacfwd`) is not
supported here: use `GradientFlow(batched=False, adjoint=diffrax.ForwardMode())`.
"""

import functools
import math
from typing import Any

import diffrax
import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import optimistix as optx

from ._custom_types import BatchedParams
from ._problem import (
    Problem,
    at_steady_state,
    is_diverged,
    is_nonfinite,
    max_abs_diverged,
    tree_max_abs,
    tree_norm,
)

# Internal per-seed results (diffrax's RESULTS, restricted to what can happen here).
_RUNNING, _EVENT, _MAX_STEPS = 0, 1, 2


def supports_batched(flow) -> bool:
    """Whether `run_batched` reproduces `flow.run` (Tsit5, checkpointed adjoint)."""
    return type(flow.solver) is diffrax.Tsit5 and isinstance(
        flow.adjoint, diffrax.RecursiveCheckpointAdjoint
    )


def _where(mask, a, b):
    """Per-seed select: `mask` (S,) broadcast against leaves (S, ...)."""
    return jax.tree.map(
        lambda x, y: jnp.where(mask.reshape(mask.shape + (1,) * (x.ndim - 1)), x, y), a, b
    )


def _stage_sum(y, coeffs, weights, gs):
    """y + Σ_j coeffs[j]·weights[j]·gs[j], per seed: `coeffs` are tableau entries
    (Python floats, zeros skipped), `weights[j]` (S,) per-seed factors (−dt·rate), `gs`
    raw gradients (leaves (S, ...)); `y=None` for the plain sum. One fused pass over
    y and the gradients: the scaled stages dt·f_j are never materialized."""
    terms = [(float(c), w, g) for c, w, g in zip(coeffs, weights, gs) if float(c) != 0.0]

    def leaf(y_leaf, *g_leaves):
        acc = None
        for (c, w, _), g in zip(terms, g_leaves):
            t = (c * w).reshape(w.shape + (1,) * (g.ndim - 1)) * g
            acc = t if acc is None else acc + t
        return acc if y_leaf is None else y_leaf + acc

    g_trees = [g for _, _, g in terms]
    if y is None:
        return jax.tree.map(lambda *ls: leaf(None, *ls), *g_trees)
    return jax.tree.map(leaf, y, *g_trees)


def _error_ratio(controller, y0, y1, coeffs, weights, gs):
    """diffrax's scaled error of a step, per seed: RMS_i(e_i / (atol + rtol·max(|y0_i|,
    |y1_i|))) over all parameters, the error estimate e = Σ_j coeffs[j]·weights[j]·gs[j]
    (as `_stage_sum`) and `controller`'s `atol`, `rtol` and RMS norm (`optx.rms_norm`).

    One fused pass reading y0, y1 and the stage gradients; e and the scaled error are
    never materialized. (`PIDController.adapt_step_size` builds the scaled error as an
    array, after a NaN check over y1 and a select; with an error estimate that cannot
    fuse into its norm that was ~16 % of W1's kernel time.) The exceptional cases are
    delegated, so the result is diffrax's: where the fused value is NaN (a NaN error or
    state), the seed's ratio is recomputed as `PIDController.adapt_step_size` does it —
    NaN errors counted infinite (`_PIDController`), y1 replaced by y0 in the scale of a
    leaf holding a NaN — inside a `cond` that runs only when some seed has a NaN.
    """
    atol, rtol, norm = controller.atol, controller.rtol, controller.norm

    def exact():
        # (e recomputed here: were the branch to take the fused pass's e, XLA would have
        # to materialize it)
        err = _stage_sum(None, coeffs, weights, gs)

        def one(a, b, e):
            def scale(a_, b_, e_):
                e_ = jnp.where(jnp.isnan(e_), jnp.inf, e_)
                b_ = jnp.where(jnp.isnan(b_).any(), a_, b_)
                return e_ / (atol + jnp.maximum(jnp.abs(a_), jnp.abs(b_)) * rtol)

            return norm(jax.tree.map(scale, a, b, e))

        return jax.vmap(one)(y0, y1, err)

    if norm is not optx.rms_norm:
        return jax.lax.stop_gradient(exact()), jax.vmap(tree_max_abs)(y1)

    def sum_sq(a, b, e):
        # One variadic reduction: Σ q² and max|y1| (the divergence check of y1) in the
        # same pass. (XLA emits it as one loop fusion with the error estimate inside;
        # a plain sum becomes a library reduction that takes e as a materialized array.)
        q = e / (atol + jnp.maximum(jnp.abs(a), jnp.abs(b)) * rtol)
        z = jnp.zeros((), q.dtype)
        return jax.lax.reduce(
            (q * q, jnp.abs(b)),
            (z, z),
            lambda u, v: (u[0] + v[0], jnp.maximum(u[1], v[1])),
            tuple(range(1, q.ndim)),
        )

    leaves = jax.tree.leaves(y0)
    size = sum(x[0].size for x in leaves)
    err = _stage_sum(None, coeffs, weights, gs)
    per_leaf = [sum_sq(*ls) for ls in zip(leaves, jax.tree.leaves(y1), jax.tree.leaves(err))]
    fast = jnp.sqrt(sum(s for s, _ in per_leaf)) / math.sqrt(size)
    max_abs_y1 = functools.reduce(jnp.maximum, [m for _, m in per_leaf])
    has_nan = jnp.isnan(fast)
    ratio = jax.lax.cond(
        jnp.any(has_nan), lambda: jnp.where(has_nan, exact(), fast), lambda: fast
    )
    # diffrax stops gradients through the scaled error (step sizes are not differentiated)
    return jax.lax.stop_gradient(ratio), max_abs_y1


def _on_scaled_error(controller):
    """`controller` with atol = 1, rtol = 0: its `adapt_step_size(t0, t1, 0, 0, args,
    r, ...)` is then `controller`'s step decision for a step of scaled error r
    (`_error_ratio`): the error norm of the scalar r is |r|/(1 + 0·0) = r, exactly."""
    return eqx.tree_at(lambda c: (c.atol, c.rtol), controller, (1.0, 0.0))


def _seed_bytes(params0: BatchedParams) -> int:
    """Bytes of one seed's parameters in a batch with a leading seed axis."""
    leaves = jax.tree.leaves(params0)
    n = max(leaves[0].shape[0], 1)
    return sum((x.size // n) * x.dtype.itemsize for x in leaves)


# The fused error pass (`_error_ratio`) from this many bytes of slots × parameters on:
# XLA emits it as one scalar (unvectorized) reduction loop, which beats materializing
# the error and reducing it with the vectorized library reduction only when the arrays
# do not fit in cache. Measured on a 2-core Xeon: W1 (128 slots × 20 kB) −4 % kernel
# time, W3 (128 × 4.4 kB) −3 % µs/eval, W2 (64 × 0.8 kB) +10 % — so W1, W3 fused, W2 not.
_FUSED_ERROR_BYTES = 2**18


def auto_slots(params0: BatchedParams, cache_bytes: int = 2**20) -> int:
    """`GradientFlow(block_size="auto")`: the number of slots for a batch `params0`.

    The largest of 128, 64, 32 slots whose step working set — about 16 arrays of
    B × (one seed's parameters): the state, seven stage gradients, stage states, the
    error estimate, the selects — fits in `cache_bytes` (1 MiB, half a 2 MiB L2); when
    none fits, 128 (the state lives in L3/memory anyway and larger batches amortize the
    per-step control ops and give bigger matrix products). Measured on a 2-core Xeon
    (µs per evaluation, `benchmarks/README.md`): W2 (200 float32 parameters: 64 slots)
    0.50 at 32–64, 0.76 at 128; W1 (5,100: 128) 10.3 at 64, 9.8–10.0 at 128; W3 (1,100:
    128) 9.7 at 64, 8.5 at 128.
    """
    seed_bytes = _seed_bytes(params0)
    for b in (128, 64, 32):
        if 16 * b * seed_bytes <= cache_bytes:
            return b
    return 128


def run_batched(
    flow,
    problem: Problem,
    params0: BatchedParams,
    slots: int | None = None,
    fused_error: bool | None = None,
) -> dict[str, Any]:
    """`flow.run` for every seed of `params0` (leading seed axis S), in one loop.

    `slots`: how many seeds are integrated at once (B = min(slots, S), at least 2;
    `None`: all S). S ≥ 2: `GradientFlow.run_batch` pads a batch of one through
    `dynsim._dynamics.blockwise`. The loop works on B slots; when a slot's seed stops (end time,
    event or `max_steps`), its final state is written out and the slot takes the next
    waiting seed, so seeds with very different step counts do not hold each other back
    and the batch stays full until the queue is empty.

    `fused_error`: compute the step's scaled error in one fused pass (`_error_ratio`)
    instead of materializing the error estimate for `PIDController.adapt_step_size`
    (same decisions); `None`: fused from `_FUSED_ERROR_BYTES` of slots × parameters on.

    Returns the same dict as `GradientFlow.run`, with a leading seed axis on every entry.
    """
    n_seeds = jax.tree.leaves(params0)[0].shape[0]
    from ._gradient_flow import _dtype, _status, final_nonfinite

    n_slots = n_seeds if slots is None else max(2, min(int(slots), n_seeds))
    if fused_error is None:
        fused_error = n_slots * _seed_bytes(params0) >= _FUSED_ERROR_BYTES
    dtype = _dtype(params0)
    ts = flow.save_times().astype(dtype)
    n_ts = ts.shape[0]
    if flow.log_time:
        to_s, from_s = jnp.log1p, jnp.expm1
    else:
        to_s = from_s = lambda t: t
    ss = to_s(ts)
    # Save times padded with +inf and looked up at min(idx, n_ts): the lookup then depends
    # on the save loop's counter even when there is one save time. (With ss[0] fixed, XLA
    # hoists the dense output and the summary, a gradient evaluation, out of the save
    # loop into every step: measured 25 % slower with n_save=1.)
    ss_pad = jnp.concatenate([ss, jnp.full((1,), jnp.inf, ss.dtype)])
    s1 = to_s(jnp.asarray(flow.t1, dtype))
    t1_clip_floor = s1
    for _ in range(100):
        t1_clip_floor = eqxi.prevbefore(t1_clip_floor)

    tableau = diffrax.Tsit5.tableau
    controller = flow._controller()
    unit_controller = _on_scaled_error(controller)
    zero = jnp.zeros((), dtype)
    solver = flow.solver

    def rate(s):
        return jnp.exp(s) if flow.log_time else 1.0

    def vf_one(s, params):
        value, g = problem.value_and_grad(params)
        r = rate(s)
        return jax.tree.map(lambda x: -r * x, g), value

    # The loop keeps raw gradients ∇L (no −rate scaling pass): stage j's derivative is
    # f_j = −rate(s_j)·g_j, folded into per-seed coefficients of the stage sums.
    grads = jax.vmap(problem.value_and_grad)  # (B, ...) -> (B,), (B, ...)
    term = diffrax.ODETerm(lambda s, y, args: vf_one(s, y)[0])
    error_order = solver.error_order(term)

    def steady(value, g):
        grad_norm = lambda: jax.vmap(tree_norm)(g)
        return at_steady_state(value, grad_norm, flow.stop_loss, flow.stop_grad_norm)

    def stop(params, value, g):
        """The event of `GradientFlow.run`, batched; g = ∇L at `params`."""
        bad = jax.vmap(lambda p, v, gp: is_diverged(p, flow.divergence) | is_nonfinite(v, gp))
        return bad(params, value, g) | steady(value, g)

    # --- initial state of every seed (as diffeqsolve), loaded into slots on demand ------
    s0 = jnp.zeros((n_seeds,), dtype)
    dt0 = jax.vmap(lambda s, y: flow.initial_step(term, s, s1, y))(s0, params0)
    snext, cstate = jax.vmap(
        lambda s, y, h: controller.init(term, s, s1, y, h, None, solver.func, error_order)
    )(s0, params0, dt0)
    value0, g0 = grads(params0)
    queue = dict(
        y=params0,
        g=g0,
        value=value0,
        sprev=s0,
        snext=jnp.minimum(snext, s1),
        cstate=cstate,
        result=jnp.where(stop(params0, value0, g0), _EVENT, _RUNNING).astype(jnp.int32),
        num_steps=jnp.zeros((n_seeds,), jnp.int32),
        save_index=jnp.zeros((n_seeds,), jnp.int32),
    )
    summary_shape = jax.eval_shape(problem.summary, jax.tree.map(lambda x: x[0], params0))
    saved0 = jax.tree.map(
        lambda sd: jnp.full((n_seeds, n_ts) + sd.shape, jnp.inf, sd.dtype), summary_shape
    )
    # What a seed leaves when it stops (written at its seed index).
    out_keys = ("y", "sprev", "result", "num_steps")
    state0 = dict(
        jax.tree.map(lambda x: x[:n_slots], queue),
        seed=jnp.arange(n_slots, dtype=jnp.int32),  # n_seeds marks an empty slot
        next_seed=jnp.asarray(n_slots, jnp.int32),
        # an empty slot and a waiting seed; set by the refill and carried (derived
        # from the slots in every step, it made XLA compile W2's loop 30 % slower)
        waiting=jnp.asarray(False),
        saved=saved0,
        out={k: queue[k] for k in out_keys},
    )

    def active(st):
        return (
            (st["seed"] < n_seeds)
            & (st["sprev"] < s1)
            & (st["result"] == _RUNNING)
            & (st["num_steps"] < flow.max_steps)
        )

    def cond(st):
        return jnp.any(st["seed"] < n_seeds)

    # At most `n_load` waiting seeds enter empty slots per iteration: loading is a
    # gather of n_load queue rows and a scatter of them into the slots, instead of a
    # gather and a select over all slots (profile, W1 1,024 seeds, where most
    # iterations retire a seed: kernel time 5.51 -> 5.36 s). It runs inside a `cond`,
    # only when a seed stopped or a slot waits for one (W2: about once per 650
    # iterations). Slots left empty get a seed on the next iterations.
    n_load = min(n_slots, max(2, -(-n_slots // 16)))

    def retire_and_refill(st, done):
        """Write out the slots whose seed stopped (`done`, (B,)); give up to `n_load`
        empty slots the next waiting seeds."""
        at = jnp.where(done, st["seed"], n_seeds)  # n_seeds: dropped
        out = {
            k: jax.tree.map(lambda o, x: o.at[at].set(x, mode="drop"), st["out"][k], st[k])
            for k in out_keys
        }
        seed = jnp.where(done, n_seeds, st["seed"])
        (empty,) = jnp.nonzero(seed == n_seeds, size=n_load, fill_value=n_slots)
        new = st["next_seed"] + jnp.arange(n_load, dtype=jnp.int32)
        load = (empty < n_slots) & (new < n_seeds)
        to = jnp.where(load, empty, n_slots)  # n_slots: dropped
        src = jnp.where(load, new, 0)
        slot = {
            k: jax.tree.map(
                lambda x, q: x.at[to].set(q.at[src].get(mode="clip"), mode="drop"), st[k], queue[k]
            )
            for k in queue
        }
        seed = seed.at[to].set(new, mode="drop")
        next_seed = st["next_seed"] + jnp.sum(load, dtype=jnp.int32)
        waiting = jnp.any(seed == n_seeds) & (next_seed < n_seeds)
        return dict(
            slot, seed=seed, next_seed=next_seed, waiting=waiting, saved=st["saved"], out=out
        )

    def body(st):
        live = active(st)
        rows = st["seed"]
        y, sprev, snext = st["y"], st["sprev"], st["snext"]
        dt = snext - sprev
        # k_j = dt·f_j = w_j·g_j with w_j = −dt·rate(s_j) (B,)
        gs, ws = [st["g"]], [-dt * rate(sprev)]
        for i in range(6):
            yi = _stage_sum(y, tableau.a_lower[i], ws, gs)
            si = sprev + tableau.c[i] * dt
            vi, gi = grads(yi)
            gs.append(gi)
            ws.append(-dt * rate(si))
        # The last stage is evaluated at y1 (c = 1, a = b_sol): FSAL.
        y1, g1, value1 = yi, gi, vi
        if fused_error:
            ratio, max_abs_y1 = _error_ratio(controller, y, y1, tableau.b_error, ws, gs)
            keep, sprev_new, snext_new, _, cstate_new, _ = jax.vmap(
                lambda a, b, e, c: unit_controller.adapt_step_size(
                    a, b, zero, zero, None, e, error_order, c
                )
            )(sprev, snext, ratio, st["cstate"])
            y1_diverged = max_abs_diverged(max_abs_y1, flow.divergence)
        else:
            y_err = _stage_sum(None, tableau.b_error, ws, gs)
            keep, sprev_new, snext_new, _, cstate_new, _ = jax.vmap(
                lambda a, b, c, d, e, g: controller.adapt_step_size(
                    a, b, c, d, None, e, error_order, g
                )
            )(sprev, snext, y, y1, y_err, st["cstate"])
            y1_diverged = jax.vmap(lambda p: is_diverged(p, flow.divergence))(y1)
        sprev_new = jnp.minimum(sprev_new, s1)
        clip = snext_new > t1_clip_floor
        sclip = jnp.where(keep, s1, sprev_new + 0.5 * (s1 - sprev_new))
        snext_new = jnp.where(clip, sclip, snext_new)
        accept = live & keep

        # Save at the save times inside the accepted step [sprev, snext].
        def save_cond(sv):
            idx, _ = sv
            return jnp.any(_needs_save(idx))

        def _needs_save(idx):
            return accept & (ss_pad[jnp.minimum(idx, n_ts)] <= snext)

        def save_body(sv):
            idx, saved = sv
            need = _needs_save(idx)
            j = jnp.minimum(idx, n_ts - 1)
            # finite where no save is due (interpolating at +inf would put NaNs into the
            # reverse pass even though `put` discards the value)
            s_save = jnp.where(need, ss_pad[jnp.minimum(idx, n_ts)], sprev)

            # Tsit5's dense output y0 + Σ_j b_j(θ)·k_j, with diffrax's own polynomials
            # b_j(θ): the interpolation is linear in (y0, k), so evaluating it on y0 = 0,
            # k = I₇ gives the weights. The sum is then one fused pass over y and the raw
            # gradients that depends on the save time: XLA cannot hoist it out of this
            # loop (a stacked (B, 7, ...) stage array was, and cost a 7-array copy per step).
            eye = jnp.eye(7, dtype=dtype)

            def weights(a, b, s_):
                return diffrax.Tsit5.interpolation_cls(
                    t0=a, t1=b, y0=jnp.zeros(7, dtype), y1=jnp.zeros(7, dtype), k=eye
                ).evaluate(s_)

            bw = jax.vmap(weights)(sprev, snext, s_save)  # (B, 7)
            y_save = _stage_sum(y, [1.0] * 7, [bw[:, j] * ws[j] for j in range(7)], gs)
            new = jax.vmap(problem.summary)(y_save)
            at = jnp.where(need, rows, n_seeds)  # n_seeds: dropped

            def put(buf, val):
                return buf.at[at, j].set(val, mode="drop")

            saved = jax.tree.map(put, saved, new)
            return idx + need.astype(idx.dtype), saved

        save_index, saved = eqxi.while_loop(
            save_cond,
            save_body,
            (st["save_index"], st["saved"]),
            max_steps=n_ts,
            kind="checkpointed",
        )

        y_new = _where(accept, y1, y)
        g_new = _where(accept, g1, st["g"])
        value_new = jnp.where(accept, value1, st["value"])
        # The event on the state after the attempt. A running seed's state is never
        # diverged (that would have stopped it), so only an accepted y1 can be; its
        # gradient is finite (it entered the error estimate, which was finite), its loss
        # need not be.
        event = live & (
            (accept & (y1_diverged | is_nonfinite(value_new))) | steady(value_new, g_new)
        )
        new_st = dict(
            y=y_new,
            g=g_new,
            value=value_new,
            sprev=jnp.where(live, sprev_new, sprev),
            snext=jnp.where(live, snext_new, snext),
            cstate=_where(live, cstate_new, st["cstate"]),
            result=jnp.where(event, _EVENT, st["result"]),
            num_steps=st["num_steps"] + live.astype(jnp.int32),
            save_index=save_index,
            seed=rows,
            next_seed=st["next_seed"],
            waiting=st["waiting"],
            saved=saved,
            out=st["out"],
        )
        finished = (rows < n_seeds) & ~active(new_st)
        # (also when a slot still waits for a seed: refills are capped at n_load)
        return jax.lax.cond(
            jnp.any(finished) | st["waiting"], retire_and_refill, lambda s, _: s, new_st, finished
        )

    # Loop bound. A seed holds a slot for at most max_steps + 1 iterations (its steps,
    # then its retirement). While seeds wait, an iteration either loads n_load of them
    # (at most ⌈S/n_load⌉ such iterations) or fills every empty slot, so that all B
    # slots do one of those S·(max_steps + 1) units of work in the next iteration (at
    # most S·(max_steps + 1)/B + 1 such iterations); once the queue is empty, the last
    # seeds finish within max_steps + 1. Hence at most
    # (⌈S/B⌉ + 1)·(max_steps + 1) + ⌈S/n_load⌉ + 1 iterations.
    n_iter = (
        (-(-n_seeds // n_slots) + 1) * (flow.max_steps + 1) + -(-n_seeds // n_load) + 1
    )
    checkpoints = getattr(flow.adjoint, "checkpoints", None)
    last = eqxi.while_loop(
        cond, body, state0, max_steps=n_iter, kind="checkpointed", checkpoints=checkpoints
    )
    final = last["out"]
    result = jnp.where(
        (final["sprev"] < s1) & (final["result"] == _RUNNING), _MAX_STEPS, final["result"]
    )
    y_final = final["y"]
    t_final = from_s(final["sprev"])
    final_summary = jax.vmap(problem.summary)(y_final)
    fill = (ts[None, :] > t_final[:, None]) | (final["num_steps"] == 0)[:, None]  # (S, T)
    saved = jax.tree.map(
        lambda s, f: jnp.where(fill.reshape(fill.shape + (1,) * (s.ndim - 2)), f[:, None], s),
        last["saved"],
        final_summary,
    )
    diverged = jax.vmap(lambda p: is_diverged(p, flow.divergence))(y_final)
    diverged = diverged | final_nonfinite(final_summary)
    status = _status(result == _RUNNING, result == _EVENT, result == _MAX_STEPS, diverged)
    return {
        "params": y_final,
        "saved": saved,
        "ts": jnp.broadcast_to(ts, (n_seeds, n_ts)),
        "status": status,
        "num_steps": final["num_steps"],
        "t_final": t_final,
    }
