"""Prints Optuna's multivariate Parzen estimator log densities on the cases that
src/search/joint.rs's `matches_optunas_multivariate_parzen_estimator` checks (values pasted
there). Run with the pinned Optuna in .venv (scripts/setup-optuna.sh):

    .venv/bin/python scripts/optuna_parzen_cases.py
"""

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator, _ParzenEstimatorParameters
from optuna.samplers._tpe.sampler import default_weights

PARAMS = _ParzenEstimatorParameters(
    prior_weight=1.0,
    consider_magic_clip=True,
    consider_endpoints=False,
    weights=default_weights,
    multivariate=True,
)

ramp = [((i * 7) % 31) / 31.0 for i in range(30)]
ramp_int = [1 + (i * 11) % 50 for i in range(30)]

# (name, {axis: distribution}, rows of internal values, points of internal values)
CASES = [
    (
        "mixed",
        {
            "lr": FloatDistribution(1e-4, 1e-1, log=True),
            "fmaps": IntDistribution(16, 64, step=8),
            "levels": CategoricalDistribution([2, 4, 8]),
        },
        [[1e-3, 24, 1], [2e-3, 40, 1], [5e-2, 48, 2], [1e-3, 48, 0]],
        [[1e-4, 16, 0], [1e-3, 24, 1], [2e-3, 48, 1], [3e-2, 64, 2], [1e-1, 40, 0]],
    ),
    (
        "ramp",
        {
            "x": FloatDistribution(0.0, 1.0),
            "n": IntDistribution(1, 50, log=True),
        },
        [[a, b] for a, b in zip(ramp, ramp_int)],
        [[0.05, 1], [0.5, 10], [0.95, 50], [0.3, 23]],
    ),
    (
        "prior only",
        {
            "x": FloatDistribution(-5.0, 5.0),
            "c": CategoricalDistribution(["a", "b", "c"]),
        },
        [],
        [[0.0, 0], [4.9, 2]],
    ),
    (
        "table",
        {
            "learning_rate": CategoricalDistribution([1e-4, 3e-4, 1e-3, 2e-3, 5e-3, 1e-2]),
            "hidden_fmaps": CategoricalDistribution([8, 16]),
            "hidden_ksize": CategoricalDistribution([3, 5]),
        },
        [[2, 1, 0], [3, 1, 1], [2, 0, 1]],
        [[2, 1, 0], [2, 1, 1], [5, 0, 0], [3, 1, 1]],
    ),
]

print(f"# optuna {optuna.__version__}")
for name, space, rows, points in CASES:
    obs = {k: np.asarray([r[i] for r in rows], dtype=float) for i, k in enumerate(space)}
    pe = _ParzenEstimator(obs, space, PARAMS)
    pts = {k: np.asarray([p[i] for p in points], dtype=float) for i, k in enumerate(space)}
    print(name, [repr(float(v)) for v in pe.log_pdf(pts)])
