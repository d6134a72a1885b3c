"""Reading a pixelx registry (SQLite) read-only: runs, metrics, checkpoints.

Every read opens its own read-only connection (`mode=ro`, `query_only`) and closes it, so a
notebook sees what a running sweep records and never holds a snapshot open while it writes.
Nothing here writes, creates or migrates a registry.
"""
import hashlib
import json
import math
import os
import re
import sqlite3
import tomllib
from contextlib import closing
from pathlib import Path

import pandas as pd
import torch

from .schema import SCHEMA_VERSION

RUN_ID = re.compile(r"[0-9a-fA-F]{1,64}")
BEST_CHECKPOINT = "checkpoints/best.safetensors"


class RegistryError(Exception):
    """A registry, run or checkpoint that cannot be read as asked; the message says why."""


class SchemaError(RegistryError):
    """The registry's schema is not the one this package reads."""


def _total_order(v):
    """A sort key ordering floats as Rust's `total_cmp` does for the values pixelx records:
    numbers ascending, then NaN."""
    return (1, 0.0) if v is None or math.isnan(v) else (0, v)


def _run_relative(stored, run_id):
    """An artefact path stored for a run, relative to the run's folder (`run_relative` in Rust)."""
    marker = f"{run_id}/"
    i = stored.rfind(marker)
    if i >= 0 and (i == 0 or stored[:i].endswith("/")):
        return stored[i + len(marker):]
    return stored


class Registry:
    """A pixelx registry, read-only.

    `path`: the registry file (default: `$PIXELX_REGISTRY`, else `<runs_dir>/registry.sqlite`).
    `runs_dir`: the folder holding the run folders (default: `$PIXELX_RUNS_DIR`, else the
    registry's own folder, else `runs`). `data_dir`: the datasets, for `evaluate` (default:
    `$PIXELX_DATA_DIR`, else `data`).
    """

    def __init__(self, path=None, runs_dir=None, data_dir=None):
        env_runs = os.environ.get("PIXELX_RUNS_DIR")
        path = path or os.environ.get("PIXELX_REGISTRY")
        if path is None:
            path = Path(runs_dir or env_runs or "runs") / "registry.sqlite"
        self.path = Path(path)
        self.runs_dir = Path(runs_dir or env_runs or self.path.parent)
        self.data_dir = Path(data_dir or os.environ.get("PIXELX_DATA_DIR") or "data")

    def __repr__(self):
        return f"pixelx.Registry({str(self.path)!r})"

    # -- the connection ------------------------------------------------------------------------

    def _connect(self):
        if not self.path.is_file():
            raise RegistryError(
                f"no registry at {self.path} (run an experiment with `pixelx run FILE`, or pass the "
                "path of an existing one)"
            )
        uri = self.path.resolve().as_uri() + "?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=5.0)
            conn.execute("PRAGMA query_only = ON")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as e:
            raise RegistryError(f"{self.path} is not a readable SQLite registry: {e}") from None
        if version == 0:
            conn.close()
            raise SchemaError(f"{self.path} is not a pixelx registry (it has no schema)")
        if version > SCHEMA_VERSION:
            conn.close()
            raise SchemaError(
                f"{self.path} has registry schema version {version}, newer than this pixelx Python "
                f"package reads ({SCHEMA_VERSION}); install the package of the pixelx that wrote it "
                "(`pip install ./python` in its checkout)"
            )
        if version < SCHEMA_VERSION:
            conn.close()
            raise SchemaError(
                f"{self.path} has registry schema version {version}, older than this pixelx Python "
                f"package reads ({SCHEMA_VERSION}); any pixelx command upgrades it once, e.g. "
                f"`pixelx --registry {self.path} ls`"
            )
        return conn

    def _query(self, sql, args=()):
        with closing(self._connect()) as conn:
            return conn.execute(sql, args).fetchall()

    # -- runs ----------------------------------------------------------------------------------

    def resolve(self, run):
        """The full id of `run`: a full id or an unambiguous prefix of one, as the CLI takes."""
        run = str(run)
        if not RUN_ID.fullmatch(run):
            raise ValueError(
                f"`{run}` is not a run id (run ids are hexadecimal, e.g. `980b2f36e396` or a prefix of one)"
            )
        found = [r[0] for r in self._query("SELECT id FROM runs WHERE id LIKE ?1 || '%' ORDER BY id", (run,))]
        if not found:
            raise RegistryError(f"no run `{run}` in {self.path}")
        if len(found) > 1:
            raise RegistryError(f"`{run}` matches {len(found)} runs: {', '.join(found)}")
        return found[0]

    def runs(self):
        """One row per run, in the order and with the values of `pixelx report --format json`:
        `id`, `experiment`, `status`, `method`, `trial`, `device` (where it trained),
        `precision_used` (what it trained in: its `precision` parameter with `auto` resolved for
        the device; None before it started), one column per run parameter (`param_` prefixed only where a name is taken: `param_device`), the best
        epoch by test bpd8 (`best_epoch`, `best_bpd8`, `best_bpd`, `best_nll`), `images_per_sec`
        (mean over epochs), `wall_seconds`, `checkpoint` and `samples` (relative to the run's
        folder), `error`, `started_at`, `finished_at` and the Slurm `job`."""
        with closing(self._connect()) as conn:
            rows = conn.execute(
                """SELECT r.id, e.name, r.status, COALESCE(r.method, e.search_method), r.trial, r.device,
                          r.precision, r.config_json, r.error, r.started_at, r.finished_at, r.job_id
                   FROM runs r JOIN experiments e ON e.id = r.experiment_id
                   ORDER BY r.created_at, r.id"""
            ).fetchall()
            epoch_rows = conn.execute(
                "SELECT run_id, name, epoch, value FROM metrics WHERE epoch IS NOT NULL"
            ).fetchall()
            best_ckpt = {r[0] for r in conn.execute("SELECT run_id FROM checkpoints WHERE is_best = 1")}
            sample_rows = conn.execute("SELECT run_id, epoch, path FROM samples ORDER BY id").fetchall()

        per_epoch = {}
        for run, name, epoch, value in epoch_rows:
            per_epoch.setdefault(run, {}).setdefault(epoch, {})[name] = math.nan if value is None else value

        fixed = ["id", "experiment", "status", "method", "trial", "device", "precision_used"]
        records = []
        for run_id, experiment, status, method, trial, device, precision, config_json, error, started, finished, job in rows:
            rec = dict(zip(fixed, (run_id, experiment, status, method, trial, device, precision)))
            for key, value in json.loads(config_json).items():
                rec["param_" + key if key in fixed else key] = value
            rec.update(self._results(per_epoch.get(run_id, {})))
            rec["checkpoint"] = BEST_CHECKPOINT if run_id in best_ckpt else None
            rec["samples"] = None
            rec.update(error=error, started_at=started, finished_at=finished, job=job)
            records.append(rec)
        index = {r["id"]: r for r in records}
        for run_id, epoch, path in sample_rows:
            rec = index.get(run_id)
            if rec is not None and (rec["best_epoch"] == epoch or rec["samples"] is None):
                rec["samples"] = _run_relative(path, run_id)

        # Best test bpd8 first (ties by bpd), runs without results last, creation order otherwise:
        # the default sort of `pixelx report`.
        records.sort(key=lambda r: (
            _total_order(math.inf if r["best_bpd8"] is None else r["best_bpd8"]),
            _total_order(math.inf if r["best_bpd"] is None else r["best_bpd"]),
        ))
        frame = pd.DataFrame.from_records(records)
        if frame.empty:
            return frame
        for col in ("trial", "best_epoch"):
            frame[col] = frame[col].astype("Int64")
        return frame

    @staticmethod
    def _results(epochs):
        """Best epoch, mean speed and wall time from one run's per-epoch metrics."""
        ordered = sorted(epochs.items())
        best = None
        for epoch, m in ordered:
            if "test_bpd8" not in m:
                continue
            cand = (epoch, m["test_bpd8"], m.get("test_bpd", math.nan), m.get("test_nll", math.nan))
            if best is None or (_total_order(cand[1]), _total_order(cand[2])) < (
                _total_order(best[1]), _total_order(best[2])
            ):
                best = cand
        speeds = [m["images_per_sec"] for _, m in ordered if "images_per_sec" in m]
        out = dict(zip(("best_epoch", "best_bpd8", "best_bpd", "best_nll"), best or (None,) * 4))
        out["images_per_sec"] = sum(speeds) / len(speeds) if speeds else None
        out["wall_seconds"] = sum(m["epoch_seconds"] for _, m in ordered if "epoch_seconds" in m) if speeds else None
        return out

    def metrics(self, run):
        """Every metric recorded for `run` (an id or a prefix), long: `run`, `name`, `step`,
        `epoch` (per-epoch metrics only) and `value`, by name then step."""
        run_id = self.resolve(run)
        rows = self._query(
            "SELECT run_id, name, step, epoch, value FROM metrics WHERE run_id = ?1 ORDER BY name, step",
            (run_id,),
        )
        frame = pd.DataFrame(rows, columns=["run", "name", "step", "epoch", "value"])
        frame["epoch"] = frame["epoch"].astype("Int64")
        frame["value"] = frame["value"].astype(float)
        return frame

    # -- checkpoints and models ----------------------------------------------------------------

    def run_folder(self, run):
        """The folder of `run`: `<runs_dir>/<id>`, else the folder the registry recorded for it."""
        run_id = self.resolve(run)
        folder = self.runs_dir / run_id
        if folder.is_dir():
            return folder
        stored = self._query("SELECT run_dir FROM runs WHERE id = ?1", (run_id,))[0][0]
        if stored and Path(stored).is_dir():
            return Path(stored)
        raise RegistryError(
            f"run {run_id} is in the registry, but its folder {folder} does not exist: its runs folder "
            f"is another than {self.runs_dir} (pass that one as runs_dir)"
        )

    def checkpoint_path(self, run, epoch=None):
        """The weight file `load_model` reads: the run's best checkpoint (else its newest) or,
        with `epoch`, the checkpoint written after that epoch."""
        folder = self.run_folder(run)
        ckpts = folder / "checkpoints"
        best = ckpts / "best.safetensors"
        epochs = {}
        for p in ckpts.glob("epoch-*.safetensors"):
            m = re.fullmatch(r"epoch-(\d+)(?:-step-(\d+))?\.safetensors", p.name)
            if m:
                epochs[(int(m[1]), int(m[2] or 0))] = p
        if epoch is None:
            if best.is_file():
                return best
            if epochs:
                return epochs[max(epochs)]
            raise RegistryError(f"run {folder.name} has no checkpoint yet (looked in {ckpts})")
        if (int(epoch), 0) in epochs:
            return epochs[(int(epoch), 0)]
        # The best epoch's checkpoint may have been cleaned up; best.safetensors keeps its weights.
        if best.is_file():
            state = read_metadata(best).get("pixelx.state")
            if state and json.loads(state).get("epochs_done") == int(epoch) and not json.loads(state).get("step_in_epoch"):
                return best
        have = ", ".join(str(e) for e, step in sorted(epochs) if step == 0) or "none"
        raise RegistryError(f"run {folder.name} has no checkpoint of epoch {epoch} in {ckpts} (epochs kept: {have})")

    def load_model(self, run, epoch=None, device="cpu"):
        """The reference PyTorch model (`reference_pixelcnn.PixelCNN`) with `run`'s best weights,
        or those after `epoch`, in eval mode. Its `pixelx_config` and `pixelx_checkpoint`
        attributes hold the run's configuration and the file read."""
        return load_checkpoint(self.checkpoint_path(run, epoch), device)

    def evaluate(self, run, epoch=None, test_subset=None, device="cpu"):
        """Test-set `nll`, `bpd`, `bpd8` and `images` of `run`'s model as `pixelx eval` computes
        them: the same test images (the run's `test_subset` unless given), the same quantisation."""
        from . import data

        model = self.load_model(run, epoch, device)
        config = model.pixelx_config
        subset = config.get("test_subset", 0) if test_subset is None else test_subset
        levels, labels = data.test_levels(
            config["dataset"], self.data_dir, max(int(subset), 0), model.channels, model.levels
        )
        return data.evaluate(model, levels, labels, model.levels)

    def test_bpd8(self, run, epoch=None, test_subset=None, device="cpu"):
        """The test bpd8 `pixelx eval` prints for `run` (bits per 8-bit sub-pixel)."""
        return self.evaluate(run, epoch, test_subset, device)["bpd8"]


def read_metadata(path):
    """The string metadata of a safetensors file."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return f.metadata() or {}


def load_checkpoint(path, device="cpu"):
    """A pixelx checkpoint or export as the reference PyTorch model, in eval mode. The file's
    `.sha256` sidecar, when there is one, is checked first."""
    from safetensors.torch import load_file

    import reference_pixelcnn

    path = Path(path)
    sidecar = path.with_name(path.name + ".sha256")
    if sidecar.is_file():
        expected = sidecar.read_text().strip()
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != expected:
            raise RegistryError(f"{path} is corrupt: its SHA-256 is {actual}, the checkpoint recorded {expected}")
    meta = read_metadata(path)
    if "pixelx.spec" not in meta:
        raise RegistryError(f"{path} has no `pixelx.spec` metadata: not a pixelx checkpoint or export")
    model = reference_pixelcnn.model_from_spec(json.loads(meta["pixelx.spec"]))
    tensors = load_file(str(path))
    own = model.state_dict()
    missing = [k for k in own if k not in tensors]
    if missing:
        raise RegistryError(f"{path} does not match its recorded architecture: missing {', '.join(missing[:5])}")
    for name, mask in own.items():
        if name.endswith(".mask") and not torch.equal(mask, tensors[name]):
            raise RegistryError(f"{path}: mask {name} differs from the reference model's")
    model.load_state_dict({k: tensors[k] for k in own}, strict=True)
    model.pixelx_config = tomllib.loads(meta.get("pixelx.config", ""))
    model.pixelx_checkpoint = path
    return model.to(device).eval()
