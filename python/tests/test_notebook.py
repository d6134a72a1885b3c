"""The notebook package against a registry of real trained runs and the `pixelx` binary that
trained them: `runs()` is `pixelx report --format json` row for row, `load_model` reproduces
`pixelx eval`'s test bpd8, the registry is only ever read, and a schema it does not know is
refused with a clear error."""
import hashlib
import re
import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import torch

import pixelx
import reference_pixelcnn

FIXED = ["id", "experiment", "status", "method", "trial", "device", "precision_used"]
TOP_LEVEL = ["images_per_sec", "wall_seconds", "checkpoint", "samples", "error", "started_at", "finished_at", "job"]


def na(v):
    """pandas' missing values (None, NaN, pd.NA) as None, as JSON's null reads."""
    return None if v is None or (not isinstance(v, str) and pd.isna(v)) else v


def test_runs_match_report_json_row_for_row(cli, registry):
    report = cli.json("report", "--format", "json")["runs"]
    frame = registry.runs()
    assert len(report) == 3
    assert list(frame["id"]) == [r["id"] for r in report], "same runs in the same order"
    assert frame["best_bpd8"].is_monotonic_increasing
    for want, (_, got) in zip(report, frame.iterrows()):
        for col in FIXED + TOP_LEVEL:
            assert na(got[col]) == want[col], (want["id"], col)
        for key, value in want["params"].items():
            col = "param_" + key if key in FIXED else key
            assert got[col] == value, (want["id"], key)
        best = want["best"]
        for field in ["epoch", "bpd8", "bpd", "nll"]:
            assert got["best_" + field] == best[field], (want["id"], field)
    assert set(frame["color_levels"]) == {2, 3, 4}
    assert set(frame["experiment"]) == {"adhoc"}
    assert list(frame["samples"].notna()) == list(frame["epochs"] == 2), "the two-epoch runs drew samples"


def test_metrics_are_the_registrys_in_long_form(cli, registry):
    run = registry.runs().query("epochs == 2").iloc[0]
    frame = pixelx.Registry(registry.path).metrics(run["id"][:5])
    assert list(frame.columns) == ["run", "name", "step", "epoch", "value"]
    assert set(frame["run"]) == {run["id"]}
    bpd8 = frame[frame["name"] == "test_bpd8"]
    assert list(bpd8["epoch"]) == [1, 2]
    assert bpd8["value"].min() == run["best_bpd8"]
    steps = re.search(r"\((\d+) training steps recorded\)", cli("show", run["id"]))
    assert (frame["name"] == "train_loss").sum() == int(steps[1]) == 2 * 256 // 32
    assert frame[frame["name"] == "train_loss"]["epoch"].isna().all()
    assert list(frame.sort_values(["name", "step"]).index) == list(frame.index)


def test_load_model_reproduces_pixelx_eval(cli, registry):
    for run_id in registry.runs()["id"]:
        model = registry.load_model(run_id[:6])
        assert isinstance(model, reference_pixelcnn.PixelCNN) and not model.training
        assert model.pixelx_checkpoint.name == "best.safetensors"
        ours = registry.evaluate(run_id)
        theirs = cli.json("eval", run_id, "--format", "json", "--device", "cpu")
        assert ours["images"] == theirs["images"] == model.pixelx_config["test_subset"]
        for key in ["nll", "bpd", "bpd8"]:
            assert abs(ours[key] - theirs[key]) < 1e-4, (run_id, key, ours[key], theirs[key])
        assert registry.test_bpd8(run_id) == ours["bpd8"]


def test_a_chosen_epoch_loads_that_epochs_weights(cli, registry):
    runs = registry.runs()
    run = runs[runs["epochs"] == 2].iloc[0]
    for epoch in [1, 2]:
        model = registry.load_model(run["id"], epoch=epoch)
        assert model.pixelx_checkpoint.name == f"epoch-{epoch:04d}.safetensors"
        theirs = cli.json("eval", "--checkpoint", model.pixelx_checkpoint, "--format", "json", "--device", "cpu")
        ours = registry.test_bpd8(run["id"], epoch=epoch)
        assert abs(ours - theirs["bpd8"]) < 1e-4
        recorded = pixelx.Registry(registry.path).metrics(run["id"]).query("name == 'test_bpd8'")
        assert abs(ours - recorded[recorded["epoch"] == epoch]["value"].item()) < 1e-4
    first, second = (registry.load_model(run["id"], epoch=e).state_dict() for e in (1, 2))
    assert any(not torch.equal(first[k], second[k]) for k in first), "two epochs, two sets of weights"
    with pytest.raises(pixelx.RegistryError, match=r"no checkpoint of epoch 7 .*epochs kept: 1, 2"):
        registry.load_model(run["id"], epoch=7)


def test_run_ids_resolve_as_the_cli_resolves_them(registry, tmp_path):
    ids = list(registry.runs()["id"])
    assert registry.resolve(ids[0][:4].upper()) == ids[0]
    with pytest.raises(ValueError, match="is not a run id"):
        registry.resolve("../etc")
    with pytest.raises(pixelx.RegistryError, match="no run `fffffffffffff`"):
        registry.resolve("fffffffffffff")
    # A second run sharing a prefix makes the prefix ambiguous (in a copy: the original is only read).
    copy = copy_registry(registry.path, tmp_path)
    with sqlite3.connect(copy) as conn:
        conn.execute(
            "INSERT INTO runs (id, experiment_id, config_json, config_hash, status, run_dir, created_at) "
            "SELECT substr(id, 1, 4) || 'ffffffff', experiment_id, config_json, config_hash, 'queued', run_dir, "
            "created_at FROM runs WHERE id = ?1",
            (ids[0],),
        )
    with pytest.raises(pixelx.RegistryError, match=f"`{ids[0][:4]}` matches 2 runs"):
        pixelx.Registry(copy).resolve(ids[0][:4])
    assert pixelx.Registry(copy).resolve(ids[0]) == ids[0]
    queued = pixelx.Registry(copy).runs().iloc[-1]
    assert queued["status"] == "queued" and na(queued["best_bpd8"]) is None, "a run without results sorts last"


def copy_registry(path, folder):
    """A consistent copy of a registry (WAL included) through SQLite's backup API."""
    target = Path(folder) / "copy.sqlite"
    src = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)
    with sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    return target


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in Path(folder).glob("registry.sqlite*")}


def test_the_registry_is_only_read(cli, registry, tmp_path):
    before = digest(registry.path.parent)
    registry.runs()
    registry.metrics(registry.runs()["id"][0])
    registry.load_model(registry.runs()["id"][0])
    assert digest(registry.path.parent) == before
    missing = tmp_path / "nothing" / "registry.sqlite"
    with pytest.raises(pixelx.RegistryError, match="no registry at"):
        pixelx.Registry(missing).runs()
    assert not missing.parent.exists()


@pytest.mark.parametrize("offset, words", [(1, "newer than this pixelx Python package reads"),
                                           (-1, "older than this pixelx Python package reads")])
def test_a_registry_of_another_schema_is_refused(registry, tmp_path, offset, words):
    copy = copy_registry(registry.path, tmp_path)
    with sqlite3.connect(copy) as conn:
        conn.execute(f"PRAGMA user_version = {pixelx.SCHEMA_VERSION + offset}")
    with pytest.raises(pixelx.SchemaError) as e:
        pixelx.Registry(copy).runs()
    assert words in str(e.value)
    assert f"version {pixelx.SCHEMA_VERSION + offset}" in str(e.value)
    assert f"({pixelx.SCHEMA_VERSION})" in str(e.value)


def test_a_damaged_checkpoint_is_refused(registry, tmp_path):
    run_id = registry.runs()["id"][0]
    src = registry.checkpoint_path(run_id)
    (tmp_path / src.name).write_bytes(src.read_bytes()[:-1] + b"\0")
    shutil.copy(src.with_name(src.name + ".sha256"), tmp_path)
    with pytest.raises(pixelx.RegistryError, match="is corrupt"):
        pixelx.load_checkpoint(tmp_path / src.name)
