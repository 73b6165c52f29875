"""Compilation with and without JAX's persistent cache: the same study run by two processes.

    python benchmarks/compile_cache.py                    # the built-in study below
    python benchmarks/compile_cache.py --study diagonal_sparse --set run.seeds=16

Each run is a fresh process running `dynsim run STUDY --out DIR --quiet` (the program,
which enables the cache by default), with `DYNSIM_CACHE_DIR` set to a new temporary
directory shared by the runs: `cold` (empty cache), `warm` (the same study again,
every program in the cache), then `no-cache` (`--no-cache`: compiles everything,
a control for `cold`). Each process records JAX's own compile events
(`jax.monitoring`):

- `chunk trace+lower`: tracing `_run_chunk` (dynsim's chunk program) to a jaxpr and
  lowering it to StableHLO, in seconds: Python work, which the persistent cache cannot
  save (the cache key is a hash of the lowered program);
- `chunk backend`: XLA's compilation of the chunk program, or on a cache hit the
  lookup and loading of the stored executable;
- `chunk total`: the sum, i.e. what `simulate(...).compile_time` measures;
- `all backend`: XLA compile (or load) time of every program of the run (data
  generation, initializations, analyses), with their count;
- `hits`, `misses`: persistent-cache lookups (a program not looked up is not counted);
- `wall`: the process, from start to exit (imports included).

The table gives each run and `warm ÷ cold` (the target of issue #18: < 10 % for the
compile time). The JSON (default `benchmarks/results/compile_cache_<date>.json`)
records the machine (`lscpu` model name), the date, the commit, the study and every
figure; `--reps` repeats the cold/warm pair, each with a new cache directory.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# A small gradient-flow study whose sweep points share one chunk program (the sweep is
# over floats, which the study builder passes as arrays).
STUDY = """\
name = "compile_cache"
description = "DiagonalNet gradient flow, three init scales (benchmarks/compile_cache.py)"
analyses = ["final_loss", "status", "dist_min_l1"]

[model]
kind = "DiagonalNet"
dim = 20

[data]
generator = "sparse_regression"
seed = 0
n = 10
d = 20
k = 3
n_test = 20

[init]
scheme = "Gaussian"
std = 0.1

[dynamics]
kind = "gradient_flow"
t1 = 100.0
n_save = 9

[run]
seeds = 64
chunk_size = 64
precision = "float64"

[sweep]
"init.std" = [0.01, 0.1, 1.0]
"""

EVENTS = {
    "/jax/core/compile/jaxpr_trace_duration": "trace",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
    "/jax/core/compile/backend_compile_duration": "backend",
}


def child(argv: list[str], record: str) -> None:
    """Run the CLI in this process (as the program) and write JAX's compile events."""
    t0 = time.perf_counter()
    import jax

    stats = {"chunk": {"trace": 0.0, "lower": 0.0, "backend": 0.0},
             "all": {"backend": 0.0, "programs": 0}, "hits": 0, "misses": 0}

    def on_duration(event, seconds, **kw):
        kind = EVENTS.get(event)
        if kind is None:
            return
        if "_run_chunk" in str(kw.get("fun_name", "")):
            stats["chunk"][kind] += seconds
        if kind == "backend":
            stats["all"]["backend"] += seconds
            stats["all"]["programs"] += 1

    def on_event(event, **kw):
        if event == "/jax/compilation_cache/cache_hits":
            stats["hits"] += 1
        elif event == "/jax/compilation_cache/cache_misses":
            stats["misses"] += 1

    jax.monitoring.register_event_duration_secs_listener(on_duration)
    jax.monitoring.register_event_listener(on_event)
    from dynsim._cli import main

    sys.argv = ["dynsim", *argv]
    rc = main()  # argv None: the program, as `dynsim run` from a shell
    c = stats["chunk"]
    c["trace+lower"] = c["trace"] + c["lower"]
    c["total"] = c["trace+lower"] + c["backend"]
    stats["rc"] = rc
    stats["wall"] = time.perf_counter() - t0
    Path(record).write_text(json.dumps(stats))


def run_once(study: str, overrides: list[str], cache: Path, work: Path, name: str,
             extra: tuple = ()) -> dict:
    record = work / f"{name}.json"
    out = work / f"out-{name}"
    argv = ["run", study, "--out", str(out), "--quiet", *extra]
    for o in overrides:
        argv += ["--set", o]
    env = {**os.environ, "DYNSIM_CACHE_DIR": str(cache),
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", str(record), "--", *argv],
                          env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{name} run failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    stats = json.loads(record.read_text())
    stats["process_wall"] = time.perf_counter() - t0
    stats["cache_files"] = sum(1 for p in cache.glob("*-cache")) if cache.exists() else 0
    return stats


def machine() -> dict:
    import jax

    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next((line.split(":", 1)[1].strip() for line in out.splitlines()
                      if line.startswith("Model name")), "?")
    except OSError:
        model = "?"
    return dict(cpu=model, cores=os.cpu_count(), jax=jax.__version__,
                backend=jax.default_backend())


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True).stdout.strip() or "?"
    except OSError:
        return "?"


ROWS = (("chunk trace+lower (s)", ("chunk", "trace+lower")),
        ("chunk backend (s)", ("chunk", "backend")),
        ("chunk total (s)", ("chunk", "total")),
        ("all backend (s)", ("all", "backend")),
        ("programs compiled/loaded", ("all", "programs")),
        ("cache hits", ("hits",)),
        ("cache misses", ("misses",)),
        ("cache files after", ("cache_files",)),
        ("wall (s)", ("wall",)))


def _get(stats, path):
    for p in path:
        stats = stats[p]
    return stats


def table(runs: dict) -> str:
    names = list(runs)
    head = f"{'':26s}" + "".join(f"{n:>10s}" for n in names) + f"{'warm/cold':>11s}"
    lines = [head]
    for label, path in ROWS:
        vals = [_get(runs[n], path) for n in names]
        cells = "".join(f"{v:10.3f}" if isinstance(v, float) else f"{v:10d}" for v in vals)
        cold, warm = _get(runs["cold"], path), _get(runs["warm"], path)
        ratio = f"{warm / cold:10.1%}" if isinstance(cold, float) and cold > 0 else ""
        lines.append(f"{label:26s}{cells} {ratio}")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        return child(sys.argv[4:], sys.argv[2])
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--study", default=None, help="study file or preset (default: built-in)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--reps", type=int, default=1, help="cold/warm pairs, new cache each")
    ap.add_argument("--no-control", action="store_true", help="skip the --no-cache run")
    ap.add_argument("--out", default=None, help="JSON path")
    args = ap.parse_args()

    reps = []
    with tempfile.TemporaryDirectory(prefix="dynsim-compile-cache-") as tmp:
        tmp = Path(tmp)
        study = args.study
        if study is None:
            study = str(tmp / "study.toml")
            Path(study).write_text(STUDY)
        for r in range(args.reps):
            cache, work = tmp / f"cache{r}", tmp / f"work{r}"
            work.mkdir()
            runs = {"cold": run_once(study, args.set, cache, work, "cold"),
                    "warm": run_once(study, args.set, cache, work, "warm")}
            if not args.no_control:
                runs["no-cache"] = run_once(study, args.set, tmp / f"unused{r}", work,
                                            "no-cache", ("--no-cache",))
            print(f"repetition {r + 1}/{args.reps}\n{table(runs)}\n", flush=True)
            reps.append(runs)
    ratio = [rep["warm"]["chunk"]["total"] / rep["cold"]["chunk"]["total"] for rep in reps]
    backend = [rep["warm"]["chunk"]["backend"] / rep["cold"]["chunk"]["backend"]
               for rep in reps]
    print(f"chunk compile warm/cold: total {min(ratio):.1%} (best of {len(reps)}), "
          f"XLA backend {min(backend):.1%}")
    now = datetime.datetime.now(datetime.UTC)
    result = dict(machine=machine(), date=now.isoformat(timespec="seconds"),
                  commit=commit(), study=args.study or STUDY, overrides=args.set,
                  repetitions=reps, chunk_total_ratio=ratio, chunk_backend_ratio=backend)
    out = Path(args.out) if args.out else (
        ROOT / "benchmarks" / "results" / f"compile_cache_{now:%Y%m%d}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
