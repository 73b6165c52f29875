"""The `dynsim` command line: run / resume / repair studies, report, presets, schema, demo,
info."""

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
import tomllib

import jax

from ._compile_cache import default_cache_dir, disable_compile_cache, enable_compile_cache
from ._progress import Progress
from .study import load_study, run_study
from .study._config import PRESET_DIR, parse_study, run_options
from .study._errors import StoreError, StudyError
from .study._interrupt import Interrupts, busy
from .study._report import point_summaries, report, summary_table
from .study._runner import repair, versions
from .study._store import Store

DEMO_PRESET = "diagonal_sparse"
# (stored analysis, column header, what the column is): the headers name exactly what
# is printed (the definitions are those of dynsim/study/_analyses.py).
DEMO_COLUMNS = (
    ("dist_min_l1", "rel. ℓ2 dist. to min-ℓ1",
     "‖β − β₁‖₂/‖β₁‖₂, β₁ = min-ℓ1 interpolator (dist_min_l1)"),
    ("dist_min_l2", "rel. ℓ2 dist. to min-ℓ2",
     "‖β − X⁺y‖₂/‖X⁺y‖₂ (dist_min_l2)"),
    ("dist_implicit_bias", "rel. ℓ2 dist. to theory",
     "‖β − β_θ₀‖₂/‖β_θ₀‖₂, β_θ₀ = implicit-bias interpolator of the seed's own init "
     "(dist_implicit_bias)"),
    ("test_risk", "test risk ½(f−y)²",
     "mean over test points of ½(f(x) − y)² (test_risk = dynsim.analysis.test_risk)"),
    ("conserved_drift", "conserved drift",
     "max_q max|C_q(θ_T) − C_q(θ_0)| / max_q max|C_q(θ_0)| over the conserved quantities C_q "
     "(conserved_drift = dynsim.analysis.conserved_drift(...).final)"),
)


def _enable_precision(study_config: dict | None) -> None:
    """The CLI is an application: it sets JAX's x64 mode for float64 studies."""
    precision = (study_config or {}).get("run", {}).get("precision", "float64")
    if precision == "float64":
        jax.config.update("jax_enable_x64", True)


def _peek_config(study: str, overrides) -> dict:
    """The raw config (with overrides), to choose the precision before building anything;
    {} if the file is not valid TOML (`load_study` then reports where)."""
    try:
        return parse_study(study, overrides).config
    except StudyError as e:
        if e.field == "toml":
            return {}
        raise


def _compile_cache(args) -> None:
    """`dynsim run` and `dynsim demo` keep compiled programs in JAX's persistent cache
    (`dynsim.enable_compile_cache`: `$DYNSIM_CACHE_DIR`, else under the user's cache
    directory), so a second run of a study loads them instead of compiling; `--no-cache`
    switches it off. Only the program does this by default: `main(argv)` called
    in-process leaves the caller's JAX cache settings alone unless given `--no-cache`."""
    if args.no_cache:
        disable_compile_cache()
    elif args.program:
        enable_compile_cache()


def cmd_run(args) -> int:
    _compile_cache(args)
    # SIGINT is deferred from here on (validation builds every point with JAX, too):
    # see dynsim/study/_interrupt.py
    with Interrupts(final=args.program) as guard:
        if args.resume:
            store = Store(args.out)
            store.check_location()
            m = store.read_manifest()
            store.check_current(m, "resumed")
            _enable_precision({"run": {"precision": m["run"]["precision"]}})
            study = load_study(args.study, args.set) if args.study else None
            seeds, n_points = m["run"]["seeds"], len(m["points"])
        else:
            if not args.study:
                raise SystemExit("dynsim run: give a STUDY file or preset name (or --resume)")
            _enable_precision(_peek_config(args.study, args.set))
            study = load_study(args.study, args.set)
            seeds, n_points = run_options(study.config)["seeds"], len(study.points())
        guard.check()
        # a terminal gets a live bar; a log (pipe, file) one line per point
        progress = Progress(seeds * n_points, n_points, quiet=args.quiet, force=True)
        t0 = time.perf_counter()
        try:
            m = run_study(study, args.out, resume=args.resume, quiet=args.quiet,
                          progress=progress, log=_note, interrupts=guard)
        except (StudyError, StoreError, KeyboardInterrupt):
            raise
        except Exception as e:  # noqa: BLE001 - reported in one line; the traceback is in the store
            _report_failure(args.out, e)
            return 1
    if not args.quiet:
        _print_summary(args.out)
        print(f"done in {time.perf_counter() - t0:.1f} s; results in {args.out} "
              f"(dynsim report {args.out} for figures)")
    return 0 if m["status"] == "complete" else 1


def _note(message: str) -> None:
    print(f"dynsim: {message}", file=sys.stderr)


def _report_failure(out, error: Exception) -> None:
    """One line on a run that failed: the error, where its traceback is, what next."""
    store = Store(out)
    try:
        m = store.read_manifest()
    except StoreError:  # failed before the store was written: nothing to point to
        raise error from None
    n = store.finished_chunks(m)
    after = (f"rerun with `dynsim run --resume --out {out}` to keep its {n} finished chunk(s)"
             if n else "nothing was finished: fix the cause and rerun the same command")
    print(f"dynsim: error: the run failed ({m.get('error')}); traceback in {store.error_log}; "
          f"{after}", file=sys.stderr)


def _print_summary(out) -> None:
    m, rows = point_summaries(out)
    print(summary_table(m, rows))


def cmd_report(args) -> int:
    files = report(args.dir, args.out)
    if not args.quiet:
        for f in files:
            print(f)
    return 0


def cmd_presets(args) -> int:
    if args.show is not None:
        path = PRESET_DIR / f"{args.show}.toml"
        if not path.is_file():
            names = ", ".join(sorted(x.stem for x in PRESET_DIR.glob("*.toml")))
            raise StudyError("--show", f"no preset {args.show!r} (presets: {names})")
        # the file as is: it validates and runs (`dynsim run FILE`), and is a template
        sys.stdout.write(path.read_text(encoding="utf-8"))
        return 0
    for f in sorted(PRESET_DIR.glob("*.toml")):
        cfg = tomllib.loads(f.read_text())
        print(f"{f.stem:28s} {cfg.get('description', '')}")
    print("\n`dynsim presets --show NAME` prints one (a study file to copy and edit)")
    return 0


def cmd_schema(args) -> int:
    from .study._docs import json_schema

    print(json.dumps(json_schema(), indent=2, ensure_ascii=False))
    return 0


def cmd_demo(args) -> int:
    _compile_cache(args)
    overrides = [] if args.seeds is None else [f"run.seeds={args.seeds}"]
    if args.seeds is not None:
        overrides.append(f"run.chunk_size={max(1, min(125, args.seeds))}")
    _enable_precision(None)
    study = load_study(DEMO_PRESET, overrides)
    tmp = None
    out = args.out
    if out is None:
        tmp = tempfile.TemporaryDirectory(prefix="dynsim-demo-")
        out = tmp.name
    print(f"dynsim demo: {study.config['description']}")
    t0 = time.perf_counter()
    run_study(study, out, quiet=args.quiet)
    wall = time.perf_counter() - t0
    m, rows = point_summaries(out)
    n = m["run"]["seeds"] * len(rows)
    print(f"\n{n} gradient-flow trajectories of a diagonal net β = u⊙u − v⊙v, "
          f"u, v ~ N(0, std²), on {m['config']['data']['n']} samples in d = "
          f"{m['config']['data']['d']} (k = {m['config']['data']['k']}-sparse truth). "
          "Medians over seeds; β is each seed's predictor at the end of its run:\n")
    heads = ["init std"] + [head for _, head, _ in DEMO_COLUMNS]
    widths = [max(len(h), 9) for h in heads]
    print("  ".join(h.rjust(w) for h, w in zip(heads, widths)))
    for r in rows:
        s = r["stats"]
        cells = [r["coords"]["init.std"]] + [
            s.get(name, {}).get("median", float("nan")) for name, _, _ in DEMO_COLUMNS
        ]
        print("  ".join(f"{c:>{w}.3g}" for c, w in zip(cells, widths)))
    print("\n  init std: the std of the Gaussian init, u, v ~ N(0, std²) (init.std)")
    for _, head, definition in DEMO_COLUMNS:
        print(f"  {head}: {definition}")
    print("\nSmall init: GF finds the sparse min-ℓ1 interpolator (rich regime) and generalizes;"
          "\nlarge random init: a dense interpolator that keeps the init's null-space part"
          "\n(kernel regime). 'theory' = Woodworth et al.'s implicit-bias interpolator for"
          "\neach seed's own init (dynsim.analysis.implicit_bias_interpolator)."
          f"\nWall time {wall:.1f} s.")
    if args.out:
        print(f"Results in {out}; figures: dynsim report {out}")
    if tmp is not None:
        tmp.cleanup()
    return 0


def cmd_info(args) -> int:
    if args.x64:
        jax.config.update("jax_enable_x64", True)
    for k, v in versions().items():
        print(f"{k:10s} {v}")
    print(f"{'backend':10s} {jax.default_backend()}")
    for d in jax.devices():
        print(f"{'device':10s} {d.platform}:{d.id} {getattr(d, 'device_kind', '')}")
    print(f"{'x64':10s} {jax.config.jax_enable_x64} (studies with precision = \"float64\" "
          "enable it; float32 studies cast data to float32)")
    print(f"{'default':10s} {jax.numpy.zeros(()).dtype}")
    print(f"{'cache':10s} {default_cache_dir()} (compiled programs of dynsim run/demo; "
          f"--no-cache: none; DYNSIM_CACHE_DIR sets it)")
    return 0


def cmd_validate(args) -> int:
    _enable_precision(_peek_config(args.study, args.set))
    with Interrupts(final=args.program) as guard:  # the dry run builds every point with JAX
        st = load_study(args.study, args.set)
        guard.check()
    print(f"{st.path}: OK ({len(st.points())} sweep point(s))")
    return 0


def cmd_repair(args) -> int:
    repair(args.dir, log=lambda message: print(f"dynsim repair: {message}"))
    return 0


_NO_CACHE_HELP = (
    "do not use the persistent compilation cache (default: compiled programs are kept in "
    "$DYNSIM_CACHE_DIR, else $XDG_CACHE_HOME/dynsim/jax or ~/.cache/dynsim/jax)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dynsim", description="Simulate gradient flow / descent over many seeds.")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run a study (TOML file or preset name) into a results directory")
    r.add_argument("study", nargs="?", help="study file or preset name (optional with --resume)")
    r.add_argument("--out", required=True, help="results directory")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a study value, e.g. --set run.seeds=100 (value parsed as TOML)")
    r.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    r.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    r.add_argument("--no-cache", action="store_true", help=_NO_CACHE_HELP)
    r.set_defaults(fn=cmd_run)

    v = sub.add_parser("validate", help="check a study file without running it")
    v.add_argument("study")
    v.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    v.set_defaults(fn=cmd_validate)

    rep = sub.add_parser("report", help="figures (PNG, SVG) and summary.md for a results directory")
    rep.add_argument("dir")
    rep.add_argument("--out", default=None, help="output folder (default DIR/report)")
    rep.add_argument("--quiet", action="store_true")
    rep.set_defaults(fn=cmd_report)

    fix = sub.add_parser(
        "repair", help="rebuild a results directory's manifest, indexes and study.toml from "
                       "its chunks' metadata")
    fix.add_argument("dir")
    fix.set_defaults(fn=cmd_repair)

    pr = sub.add_parser("presets", help="list the built-in studies, or print one")
    pr.add_argument("--show", metavar="NAME", default=None,
                    help="print preset NAME's study file (TOML; runs as is)")
    pr.set_defaults(fn=cmd_presets)

    sc = sub.add_parser("schema", help="print the JSON schema of study files "
                                       "(docs/studies.md documents the format)")
    sc.set_defaults(fn=cmd_schema)

    d = sub.add_parser("demo", help="a ~1,000-seed showcase study with a summary table")
    d.add_argument("--seeds", type=int, default=None, help="seeds per point (default 250)")
    d.add_argument("--out", default=None, help="keep the results here (default: temporary)")
    d.add_argument("--quiet", action="store_true")
    d.add_argument("--no-cache", action="store_true", help=_NO_CACHE_HELP)
    d.set_defaults(fn=cmd_demo)

    i = sub.add_parser("info", help="devices, versions, precision")
    i.add_argument("--x64", action="store_true", help="report with x64 enabled")
    i.set_defaults(fn=cmd_info)
    return p


def main(argv=None) -> int:
    """The program (`argv` None: `sys.argv`), or one command in-process (`argv` given:
    then SIGINT is never left ignored afterwards)."""
    args = build_parser().parse_args(argv)
    args.program = argv is None
    try:
        return args.fn(args)
    except (StudyError, StoreError) as e:
        print(f"dynsim: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `dynsim schema | head`: the reader left early
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 141
    except OSError as e:  # e.g. `report` into a read-only directory
        print(f"dynsim: error: {e.filename or ''}{': ' if e.filename else ''}"
              f"{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # the program ends here: a second Ctrl-C must not interrupt the message or the
        # clean-up at exit (JAX's atexit handlers), which would print a traceback
        if args.program and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        if args.command == "run":
            print(f"\ndynsim: interrupted; finished chunks are saved. Continue with "
                  f"`dynsim run --resume --out {args.out}`", file=sys.stderr)
        else:
            print("\ndynsim: interrupted", file=sys.stderr)
        if busy():  # a worker is still inside XLA: leave now, without finalizing under it
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        return 130


if __name__ == "__main__":
    sys.exit(main())
