"""Small study files shared by test_study.py, test_store.py and test_cli.py."""

import textwrap

SMALL = textwrap.dedent(
    """\
    name = "small"
    description = "tiny diagonal-net study for tests"
    analyses = ["final_loss", "status", "conserved_drift", "dist_min_l1", "dist_min_l2", "test_risk"]

    [model]
    kind = "DiagonalNet"
    dim = 12

    [data]
    generator = "sparse_regression"
    seed = 0
    n = 6
    d = 12
    k = 2
    n_test = 50

    [init]
    scheme = "Gaussian"
    std = 0.1

    [loss]
    name = "squared"

    [dynamics]
    kind = "gradient_descent"
    learning_rate = 0.01
    steps = STEPS
    n_save = 9

    [run]
    seeds = SEEDS
    chunk_size = CHUNK
    key = 3
    precision = "float64"

    [sweep]
    "init.std" = [0.01, 0.1]
    """
)


def small_study(seeds=10, chunk=4, steps=300) -> str:
    return (SMALL.replace("STEPS", str(steps)).replace("SEEDS", str(seeds))
            .replace("CHUNK", str(chunk)))


def write_study(path, text=None, **kw):
    path.write_text(text if text is not None else small_study(**kw))
    return path
