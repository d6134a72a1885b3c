"""A registry with real trained runs for the notebook package's tests: two runs of two epochs
(2 and 4 colour levels, with sample grids) and one of a 3-channel model on grayscale MNIST, each
a tiny model trained in seconds by the built `pixelx train` on real MNIST."""
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--hidden-layers", "1", "--causal-ksize", "5", "--hidden-ksize", "3", "--batch-size", "32", "--device", "cpu"]


class Pixelx:
    """The built binary over one runs folder."""

    def __init__(self, runs):
        self.runs = runs
        self.binary = Path(os.environ.get("PIXELX_BIN", ROOT / "target" / "debug" / "pixelx"))
        if not self.binary.is_file():
            pytest.exit(f"{self.binary} is missing: build pixelx first (`cargo build`)", returncode=2)

    def __call__(self, *args):
        env = dict(os.environ, PIXELX_THREADS="1")
        env.setdefault("PIXELX_DATA_DIR", str(ROOT / "data"))
        out = subprocess.run(
            [self.binary, "--runs-dir", self.runs, *map(str, args)], capture_output=True, text=True, env=env
        )
        assert out.returncode == 0, f"pixelx {' '.join(map(str, args))} failed:\n{out.stderr}"
        return out.stdout

    def json(self, *args):
        return json.loads(self(*args))


@pytest.fixture(scope="session")
def cli(tmp_path_factory):
    cli = Pixelx(tmp_path_factory.mktemp("notebook") / "runs")
    for levels in [2, 4]:
        cli("-q", "train", "--epochs", "2", "--train-subset", "256", "--test-subset", "64", "--color-levels", levels,
            "--hidden-fmaps", "8", "--out-hidden-fmaps", "8", "--lr", "5e-3", "--epoch-samples", "1", *TINY)
    cli("-q", "train", "--epochs", "1", "--train-subset", "128", "--test-subset", "48", "--data-channels", "3",
        "--hidden-fmaps", "9", "--out-hidden-fmaps", "9", "--color-levels", "3", "--epoch-samples", "0", *TINY)
    return cli


@pytest.fixture()
def registry(cli):
    import pixelx

    return pixelx.Registry(cli.runs / "registry.sqlite", data_dir=os.environ.get("PIXELX_DATA_DIR", ROOT / "data"))
