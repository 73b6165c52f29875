"""A researcher's own model against the same network built in: cost per gradient
evaluation under the batched gradient-flow loop.

The network is the W3 student of `gf_batched.py` with the standard parametrization,
f(x) = Σ_j a_j tanh(w_jᵀx + b_j) (`TwoLayerNet(20, 50, "tanh", scaling="standard")`; tanh,
not W3's ReLU, whose kinks make the adaptive step chatter to the step limit), on the
teacher–student data of W3 (n = 100, d = 20), squared loss, from the same initial
parameters (w, b ~ N(0, 1), a ~ N(0, 1/m)). It is run as

- `builtin`: `TwoLayerNet` (its hand-written pullback, `apply_and_pullback`);
- `custom`: `models.Custom(TwoLayerNet.apply, params)` (JAX's reverse mode on the
  same `apply`);
- `equinox`: `models.Equinox(make)` with `eqx.nn.MLP(20, "scalar", 50, depth=1,
  activation=tanh, use_final_bias=False)`, the same function and parameters laid out as
  the module's leaves (layer 0: W, b; layer 1: aᵀ), applied sample by sample under
  `vmap`.

All three integrate the same flow from the same point to t1 = 10, so their step counts
agree up to rounding, and the script checks that their final parameters agree.
`us/eval`: wall time after compilation ÷ (6 × accepted-and-rejected steps summed over
seeds + seeds), best of `--reps` runs, the models interleaved; `ratio`: ÷ builtin.

    python benchmarks/custom_models.py --seeds 1024 --reps 3 --out benchmarks/results/custom_models_<machine>.json
"""

import argparse
import datetime
import json
import os
import subprocess

import equinox as eqx
import gf_batched as gb
import jax
import jax.numpy as jnp
import numpy as np

import dynsim
from dynsim.models import Custom, Equinox, TwoLayerNet

D, M, N = 20, 50, 100


def _mlp(key):
    return eqx.nn.MLP(D, "scalar", M, 1, activation=jnp.tanh, use_final_bias=False, key=key)


def _two_layer_init(model, data, key):
    kw, kb, ka = jax.random.split(key, 3)
    dtype = data.X.dtype
    return {"w": jax.random.normal(kw, (M, D), dtype), "b": jax.random.normal(kb, (M,), dtype),
            "a": jax.random.normal(ka, (M,), dtype) / np.sqrt(M)}


def _as_module_params(p):
    """The parameters `p` of the two-layer net as the `Equinox` model's leaves."""
    module = eqx.tree_at(lambda m: (m.layers[0].weight, m.layers[0].bias, m.layers[1].weight),
                         _mlp(jax.random.key(0)), (p["w"], p["b"], p["a"][None, :]))
    return eqx.filter(module, eqx.is_inexact_array)


def setups():
    teacher = TwoLayerNet(D, 4)
    data = dynsim.data.teacher_student(jax.random.key(0), N, teacher)
    builtin = TwoLayerNet(D, M, "tanh", scaling="standard")
    like = {"w": jnp.zeros((M, D)), "b": jnp.zeros((M,)), "a": jnp.zeros((M,))}
    custom = Custom(builtin.apply, like)
    equinox = Equinox(_mlp)
    init = dynsim.init.Custom(_two_layer_init, with_context=True)
    init_eqx = dynsim.init.Custom(lambda m, d, k: _as_module_params(_two_layer_init(m, d, k)),
                                  with_context=True)
    return data, {"builtin": (builtin, init), "custom": (custom, init), "equinox": (equinox, init_eqx)}


def run(model, init, data, seeds):
    flow = dynsim.GradientFlow(t1=10.0)
    res = dynsim.simulate(model, data, init=init, dynamics=flow, seeds=seeds, key=jax.random.key(1))
    steps = np.asarray(res.num_steps, dtype=np.int64)
    evals = int(6 * steps.sum() + seeds)
    wall = res.wall_time - res.compile_time
    return dict(wall_s=wall, compile_s=res.compile_time, evals=evals, steps_mean=float(steps.mean()),
                us_per_eval=1e6 * wall / evals, loss_final=float(np.median(np.asarray(res.loss)[:, -1]))), res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    data, models = setups()
    best, finals = {}, {}
    for rep in range(args.reps):
        for name, (model, init) in models.items():
            r, res = run(model, init, data, args.seeds)
            print(f"rep {rep} {name:<8} wall {r['wall_s']:.2f} s  {r['us_per_eval']:.3f} us/eval", flush=True)
            if name not in best or r["us_per_eval"] < best[name]["us_per_eval"]:
                best[name] = r
            finals[name] = res
    # the three runs integrate one flow: final parameters agree (a mismatch means the
    # comparison is not of the same computation)
    w_ref = np.asarray(finals["builtin"].params["w"])
    agree = {"custom": float(np.max(np.abs(np.asarray(finals["custom"].params["w"]) - w_ref))),
             "equinox": float(np.max(np.abs(np.asarray(finals["equinox"].params.layers[0].weight) - w_ref)))}
    base = best["builtin"]["us_per_eval"]
    head = f"{'model':<9} {'seeds':>6} {'wall s':>8} {'compile s':>9} {'steps':>8} {'us/eval':>8} {'ratio':>6} {'L final':>9}"
    print(head)
    print("-" * len(head))
    for name, r in best.items():
        r["ratio"] = r["us_per_eval"] / base
        print(f"{name:<9} {args.seeds:>6} {r['wall_s']:>8.2f} {r['compile_s']:>9.2f} {r['steps_mean']:>8.0f} "
              f"{r['us_per_eval']:>8.3f} {r['ratio']:>6.2f} {r['loss_final']:>9.2e}")
    print("max |w_final − builtin's|:", agree)
    if args.out:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=os.path.dirname(__file__)).stdout.strip()
        json.dump(dict(date=datetime.date.today().isoformat(), revision=rev, machine=gb.machine(),
                       seeds=args.seeds, reps=args.reps, rows=best, final_w_max_abs_diff=agree),
                  open(args.out, "w"), indent=1)


if __name__ == "__main__":
    main()
