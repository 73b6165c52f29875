"""Every field's type and range is checked by `dynsim validate` (and before `dynsim run`
creates anything), in a study file (with its line) and in `--set`; a run that fails
anyway leaves a store that a rerun or `--resume` handles in one line."""



import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _study_helpers import small_study, write_study

import dynsim.study as study
from dynsim._cli import main
from dynsim.study import _build, _schema

ROOT = Path(__file__).resolve().parents[1]
GD = small_study(seeds=4, chunk=4, steps=50).split("[sweep]")[0]  # one point, no sweep
GF = GD.replace(
    'kind = "gradient_descent"\nlearning_rate = 0.01\nsteps = 50\n',
    'kind = "gradient_flow"\nsolver = "Tsit5"\nt1 = 10.0\nrtol = 1e-6\nmax_steps = 1000\n',
)
assert "gradient_flow" in GF

# (base study, field, bad value as TOML): a string where a number belongs, negative /
# zero / NaN / inf where a positive number belongs, a float or boolean where an integer
# belongs, a count beyond int32, unknown names.
BAD = [
    ("GF", "dynamics.rtol", '"1e-8"'),
    ("GF", "dynamics.rtol", "-1e-6"),
    ("GF", "dynamics.rtol", "0.0"),
    ("GF", "dynamics.rtol", "nan"),
    ("GF", "dynamics.atol", "inf"),
    ("GF", "dynamics.t1", "0"),
    ("GF", "dynamics.t1", '"10"'),
    ("GF", "dynamics.max_steps", "100.5"),
    ("GF", "dynamics.max_steps", "1e3"),
    ("GF", "dynamics.max_steps", "true"),
    ("GF", "dynamics.max_steps", "-5"),
    ("GF", "dynamics.n_save", "2.0"),
    ("GF", "dynamics.stop_loss", "-1.0"),
    ("GF", "dynamics.log_time", "1"),
    ("GF", "dynamics.block_size", "0"),
    ("GF", "dynamics.solver", '"Tsit6"'),
    ("GF", "dynamics.solver", '"ShARK"'),  # an SDE solver
    ("GF", "dynamics.solver", "5"),
    ("GD", "dynamics.learning_rate", '"0.01"'),
    ("GD", "dynamics.learning_rate", "nan"),
    ("GD", "dynamics.learning_rate", "-0.1"),
    ("GD", "dynamics.learning_rate", "0.0"),
    ("GD", "dynamics.steps", "10.5"),
    ("GD", "dynamics.steps", "0"),
    ("GD", "dynamics.save_steps", "[0, 1.5]"),
    ("GD", "dynamics.optimizer", '"l2_loss"'),  # an optax function, not an optimizer
    ("GD", "init.std", '"0.1"'),
    ("GD", "init.std", "-0.1"),
    ("GD", "init.std", "nan"),
    ("GD", "model.dim", "12.0"),
    ("GD", "model.dense_scale", "nan"),
    ("GD", "data.n", "6.0"),
    ("GD", "data.n", '"6"'),
    ("GD", "data.noise", "-1.0"),
    ("GD", "data.seed", "1.5"),
    ("GD", "loss.reduction", "1"),
    ("GD", "run.seeds", "1.5"),
    ("GD", "run.seeds", "100000000000"),  # counts are int32 inside JAX
    ("GD", "data.n", "100000000000"),  # the dry run used to abort in XLA allocating it
    ("GD", "run.chunk_size", "0"),
    ("GD", "run.key", "18446744073709551617"),  # 2**64 + 1: beyond any PRNG seed
    ("GD", "run.key", "4294967296"),  # 2**32: float32 studies would see key 0 again
    ("GD", "data.seed", "18446744073709551616"),
    ("GD", "run.save_params", '"yes"'),
]
IDS = [f"{b}-{f}={v}" for b, f, v in BAD]


def _set_in_file(text: str, field: str, literal: str) -> tuple[str, int]:
    """`text` with `field = literal` in its section (replaced or added); its line."""
    section, key = field.rsplit(".", 1)
    lines = text.splitlines()
    start = lines.index(f"[{section}]")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
    for i in range(start + 1, end):
        if re.match(rf"{re.escape(key)}\s*=", lines[i]):
            lines[i] = f"{key} = {literal}"
            break
    else:
        i = start + 1
        lines.insert(i, f"{key} = {literal}")
    return "\n".join(lines) + "\n", i + 1


def _one_line_error(err: str, field: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("dynsim: error: "), err
    assert f"{field}: " in lines[0], err
    return lines[0]


@pytest.mark.parametrize("base, field, literal", BAD, ids=IDS)
def test_bad_value_in_file(tmp_path, capsys, base, field, literal):
    text, line = _set_in_file(GF if base == "GF" else GD, field, literal)
    f = write_study(tmp_path / "s.toml", text)
    assert main(["validate", str(f)]) == 2
    msg = _one_line_error(capsys.readouterr().err, field)
    assert f"{f}:{line}: {field}: " in msg


@pytest.mark.parametrize("base, field, literal", BAD, ids=IDS)
def test_bad_value_in_set(tmp_path, capsys, base, field, literal):
    f = write_study(tmp_path / "s.toml", GF if base == "GF" else GD)
    literal = literal.strip('"') if literal == '"Tsit6"' else literal  # a bare word, too
    assert main(["validate", str(f), "--set", f"{field}={literal}"]) == 2
    msg = _one_line_error(capsys.readouterr().err, field)
    assert f"--set {field}: {field}: " in msg
    out = tmp_path / "o"
    assert main(["run", str(f), "--out", str(out), "--set", f"{field}={literal}"]) == 2
    assert _one_line_error(capsys.readouterr().err, field) == msg
    assert not out.exists()  # refused before anything was created


@pytest.mark.parametrize("literal", ["abc", '"1e-8"'])
def test_set_string_for_rtol(tmp_path, capsys, literal):
    f = write_study(tmp_path / "s.toml", GF)
    assert main(["validate", str(f), "--set", f"dynamics.rtol={literal}"]) == 2
    msg = _one_line_error(capsys.readouterr().err, "dynamics.rtol")
    assert "must be a positive number; got" in msg and "(a string)" in msg


def test_sweep_values_are_checked_with_the_sweep_line(tmp_path, capsys):
    text = small_study().replace('"init.std" = [0.01, 0.1]', '"init.std" = [0.01, nan]')
    f = write_study(tmp_path / "s.toml", text)
    assert main(["validate", str(f)]) == 2
    line = next(i for i, s in enumerate(text.splitlines(), 1) if s.startswith('"init.std"'))
    msg = _one_line_error(capsys.readouterr().err, "init.std")
    assert f"{f}:{line}: init.std: " in msg and "nan" in msg
    # a --set of a swept key would be ignored: refused
    f = write_study(tmp_path / "t.toml", small_study())
    assert main(["validate", str(f), "--set", "init.std=0.5"]) == 2
    assert "sweep.init.std" in _one_line_error(capsys.readouterr().err, "init.std")


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"\xff\xfe" + "name = 'x'\n".encode("utf-16-le"), "is not UTF-8 text (byte 0xff"),
        (bytes(range(256)), "is not UTF-8 text"),
        (b"name = 'x'\x00\x01\x02", "is a binary file (NUL byte at offset 10)"),
    ],
    ids=["utf16", "random-bytes", "nul"],
)
def test_unreadable_study_file_is_one_line(tmp_path, capsys, content, problem):
    f = tmp_path / "s.toml"
    f.write_bytes(content)
    assert main(["validate", str(f)]) == 2
    msg = _one_line_error(capsys.readouterr().err, "study")
    assert problem in msg and str(f) in msg


def test_byte_order_mark_is_accepted(tmp_path, capsys):
    """A UTF-8 BOM (as some editors write) is not part of the TOML text."""
    f = tmp_path / "s.toml"
    f.write_bytes(b"\xef\xbb\xbf" + GD.encode())
    assert main(["validate", str(f)]) == 0
    assert study.load_study(str(f)).config == study.load_study(
        str(write_study(tmp_path / "plain.toml", GD))).config


def test_analyses_needing_a_test_split(tmp_path, capsys):
    assert '"test_risk"]' in GD
    text, _ = _set_in_file(GD, "data.n_test", "0")
    f = write_study(tmp_path / "s.toml", text)
    assert main(["validate", str(f)]) == 2
    msg = _one_line_error(capsys.readouterr().err, "analyses")
    assert "test_risk: needs a held-out split (data.n_test > 0)" in msg


def test_validate_in_a_child_process_prints_one_line(tmp_path):
    f = write_study(tmp_path / "s.toml", _set_in_file(GF, "dynamics.rtol", '"1e-8"')[0])
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "dynsim._cli", "validate", str(f)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    _one_line_error(proc.stderr, "dynamics.rtol")


def test_schemas_cover_every_keyword():
    """A keyword a constructor accepts but the schema does not know would be refused."""
    import dynsim.data
    import dynsim.init
    import dynsim.models
    from dynsim.dynamics import GradientDescent, GradientFlow, StochasticGradientFlow
    from dynsim.losses import BY_NAME as _BY_NAME

    groups = [
        (_schema.MODELS, {k: getattr(dynsim.models, k) for k in _build.MODEL_KINDS}),
        (_schema.DATA, {k: getattr(dynsim.data, k) for k in _build.DATA_GENERATORS}),
        (_schema.INITS, {k: getattr(dynsim.init, k) for k in _build.INIT_SCHEMES}),
        ({k: _schema.LOSSES for k in _BY_NAME}, dict(_BY_NAME)),
        (_schema.DYNAMICS, {"gradient_flow": GradientFlow, "gradient_descent": GradientDescent,
                            "stochastic_flow": StochasticGradientFlow}),
    ]
    for schemas, constructors in groups:
        assert set(schemas) == set(constructors)
        for name, fn in constructors.items():
            assert set(_build.study_keywords(fn)) == set(schemas[name]) - {"seed"}, name


# ---------------------------------------------------------------- a run that fails anyway


def _failing_simulate(after_calls: int):
    from dynsim import _simulate

    original = _simulate.simulate
    calls = {"n": 0}

    def simulate(*args, **kwargs):
        if calls["n"] >= after_calls:
            raise RuntimeError("XLA says no\nsecond line of a long message")
        calls["n"] += 1
        return original(*args, **kwargs)

    return simulate


def test_failed_run_before_any_chunk_then_plain_rerun_starts_over(tmp_path, capsys, monkeypatch):
    from dynsim import _simulate

    f = write_study(tmp_path / "s.toml", small_study(seeds=4, chunk=4, steps=50))
    out = tmp_path / "out"
    monkeypatch.setattr(_simulate, "simulate", _failing_simulate(0))
    assert main(["run", str(f), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "the run failed (RuntimeError: XLA says no)" in err and "error.log" in err
    assert "nothing was finished" in err
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "failed" and m["error"] == "RuntimeError: XLA says no"
    assert "Traceback" in (out / "error.log").read_text()
    monkeypatch.undo()
    assert main(["run", str(f), "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "failed before any chunk was finished; starting over" in err
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "complete" and len(m["runs"]) == 1 and "error" not in m
    assert not (out / "error.log").exists()
    assert study.load(out).sizes["seed"] == 4


def test_failed_run_after_some_chunks_points_to_resume(tmp_path, capsys, monkeypatch):
    from dynsim import _simulate

    f = write_study(tmp_path / "s.toml", small_study(seeds=4, chunk=4, steps=50))
    out = tmp_path / "out"
    monkeypatch.setattr(_simulate, "simulate", _failing_simulate(1))  # point 0 runs, point 1 fails
    assert main(["run", str(f), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "--resume" in err and "1 finished chunk(s)" in err
    monkeypatch.undo()
    assert main(["run", str(f), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "holds a run that failed (RuntimeError: XLA says no) after 1 finished chunk(s)" in err
    assert main(["run", "--resume", "--out", str(out), "--quiet"]) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "complete" and m["runs"][-1]["chunks_computed"] == 1
    assert np.all(np.isfinite(study.load(out)["final_loss"].values))


def test_resume_of_a_store_with_an_invalid_study(tmp_path, capsys):
    """A store written before validation caught a bad value (here: rtol a string)."""
    f = write_study(tmp_path / "s.toml", GF.replace("seeds = 4", "seeds = 2").replace(
        "chunk_size = 4", "chunk_size = 2"))
    out = tmp_path / "out"
    assert main(["run", str(f), "--out", str(out), "--quiet"]) == 0
    toml = out / "study.toml"
    toml.write_text(toml.read_text().replace("rtol = 1e-6", 'rtol = "1e-6"'))
    assert main(["run", "--resume", "--out", str(out), "--quiet"]) == 2
    msg = _one_line_error(capsys.readouterr().err, "dynamics.rtol")
    assert "cannot resume, the study it holds is invalid" in msg and "new --out" in msg


def test_label_noise_from_a_study_and_a_classification_loss_named(capsys):
    """`dynamics.label_noise` of gradient descent is a study field; the dynamics' own
    refusal (a classification loss) names it and where it was given."""
    assert main(["validate", "teacher_student", "--set", "dynamics.label_noise=0.05"]) == 0
    capsys.readouterr()
    assert main(["validate", "exponential_margin", "--set", "dynamics.label_noise=0.1"]) == 2
    msg = _one_line_error(capsys.readouterr().err, "dynamics.label_noise")
    assert msg.startswith("dynsim: error: --set dynamics.label_noise: ") and "classification" in msg
