#!/usr/bin/env bash
# The device check for issue #6, prepared to run in ONE call on a lent GPU machine
# (no network there; jax, diffrax, optax, chex, equinox, xarray, pytest preinstalled):
#
#     OUT=/some/dir bash benchmarks/gpu_run.sh        # from the repository root
#
# Every step has its own time limit and writes its table/JSON into $OUT as it goes
# (gf_batched.py rewrites its JSON after every point), so a step that runs out of time
# loses only itself. Total 9 min 20 s of limits; scipy/torch baselines are left to
# the CPU tables (one scipy seed per point, for the record).
set -u
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
export PYTHONPATH=.
export XLA_PYTHON_CLIENT_PREALLOCATE=false

(nvidia-smi; python -c "import jax; print(jax.__version__, jax.devices())") > "$OUT/machine.txt" 2>&1

run() {  # run LIMIT NAME ARGS...: one gf_batched.py invocation
    local limit=$1 name=$2
    shift 2
    timeout "$limit" python benchmarks/gf_batched.py --torch-max-seeds 0 --scipy-seeds 1 \
        --out "$OUT/$name.json" "$@" > "$OUT/$name.log" 2>&1
    echo "$name: rc=$? ($(date +%T))" | tee -a "$OUT/steps.txt"
}

# W1 at the size with the default ("auto": 128 slots, tuned on a CPU) and with
# every seed in one block, then at 8,192 seeds.
run 90 W1_1024 --workloads W1 --seeds 1024
run 60 W1_1024_all --workloads W1 --seeds 1024 --block-size all --vmap-seeds 0
run 100 W1_8192 --workloads W1 --seeds 8192 --vmap-seeds 0
run 60 W1_8192_b1024 --workloads W1 --seeds 8192 --block-size 1024 --vmap-seeds 0
# The interleaved loop/scan ratio (best of 3).
timeout 50 python benchmarks/scan_ratio.py --seeds 1024 --reps 3 \
    --out "$OUT/W1_1024_scan_ratio.json" > "$OUT/W1_1024_scan_ratio.log" 2>&1
echo "scan_ratio: rc=$?" | tee -a "$OUT/steps.txt"
# W2 (non-stiff α) and W3 at 1,024 seeds.
run 80 W2_1024 --workloads W2 --alphas 1e-3,1e-1 --seeds 1024 --vmap-seeds 32
run 60 W3_1024 --workloads W3 --seeds 1024 --vmap-seeds 16
# The batched loop's tests on the device (float64 comparisons with the per-seed path).
timeout 60 python -m pytest -q -x tests/test_batched_loop.py > "$OUT/tests.log" 2>&1
echo "tests: rc=$?" | tee -a "$OUT/steps.txt"
