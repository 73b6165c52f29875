r"""Brownian motion on a fixed step grid, drawn step by step from one seed's key."""

import math

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PyTree

from .._custom_types import Key


class StepBrownianPath(diffrax.AbstractBrownianPath):
    r"""A Brownian motion W sampled on the step grid s₀ < s₁ < … < s_K only.

    The increment over step k, W(s_{k+1}) − W(s_k) = √(s_{k+1} − s_k)·ξ_k with
    ξ_k ~ N(0, I) drawn from `fold_in(key, k)`, and (for solvers that need it) the
    space-time Lévy area H_k = √(s_{k+1} − s_k)/√12·ζ_k, ζ_k ~ N(0, I) independent of
    ξ_k (H given W is exactly so distributed). One normal draw per step, against the
    O(log(T/tol)) draws of `diffrax.VirtualBrownianTree`; the price is that W is
    defined only for the intervals [s_k, s_{k+1}] of the grid (a solver with a fixed
    step `diffrax.StepTo(grid)` queries nothing else) and that a different grid gives a
    different path. Step k's increment depends only on (`key`, k).
    """

    shape: PyTree[jax.ShapeDtypeStruct] = eqx.field(static=True)
    levy_area: type = eqx.field(static=True)
    grid: tuple = eqx.field(static=True)
    key: Key

    @property
    def t0(self):
        return self.grid[0]

    @property
    def t1(self):
        return self.grid[-1]

    def evaluate(self, t0, t1=None, left=True, use_levy=False):
        del left
        if t1 is None:
            raise ValueError("StepBrownianPath gives increments over grid steps only")
        grid = np.asarray(self.grid)
        mids = jnp.asarray((grid[1:] + grid[:-1]) / 2, jnp.result_type(t0))
        # Step k is the one whose midpoint is the first above t0 (t0 = s_k).
        k = jnp.searchsorted(mids, t0)
        h = t1 - t0
        leaves, treedef = jax.tree.flatten(self.shape)
        keys = jax.random.split(jax.random.fold_in(self.key, k), 2 * len(leaves))
        std = [jnp.sqrt(h).astype(s.dtype) for s in leaves]
        W = jax.tree.unflatten(treedef, [
            sd * jax.random.normal(keys[2 * i], s.shape, s.dtype)
            for i, (s, sd) in enumerate(zip(leaves, std))])
        if not use_levy:
            return W
        dt = jnp.asarray(h, jnp.result_type(*leaves))
        if self.levy_area is not diffrax.SpaceTimeLevyArea:
            return diffrax.BrownianIncrement(dt=dt, W=W)
        # H from the odd keys, so W is the same path whether or not H is drawn.
        H = jax.tree.unflatten(treedef, [
            sd / math.sqrt(12) * jax.random.normal(keys[2 * i + 1], s.shape, s.dtype)
            for i, (s, sd) in enumerate(zip(leaves, std))])
        return diffrax.SpaceTimeLevyArea(dt=dt, W=W, H=H)
