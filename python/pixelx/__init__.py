"""pixelx in a notebook: a registry's runs and metrics as pandas DataFrames, its trained models
as the reference PyTorch model, and their test bpd8 as `pixelx eval` computes it.

    import pixelx
    pixelx.runs()                          # the default registry: $PIXELX_REGISTRY or runs/registry.sqlite
    reg = pixelx.Registry("elsewhere/registry.sqlite")
    reg.metrics("e785")                    # run ids may be abbreviated to an unambiguous prefix
    model = reg.load_model("e785", epoch=2)
    reg.test_bpd8("e785")

The registry is only ever read (see `Registry`).
"""
from .registry import Registry, RegistryError, SchemaError, load_checkpoint
from .schema import SCHEMA_VERSION

__all__ = [
    "Registry",
    "RegistryError",
    "SchemaError",
    "SCHEMA_VERSION",
    "load_checkpoint",
    "runs",
    "metrics",
    "load_model",
    "evaluate",
    "test_bpd8",
]


def runs(registry=None):
    """`Registry(registry).runs()`: one row per run, as `pixelx report --format json`."""
    return Registry(registry).runs()


def metrics(run, registry=None):
    """`Registry(registry).metrics(run)`: every recorded metric of a run, long."""
    return Registry(registry).metrics(run)


def load_model(run, epoch=None, registry=None, device="cpu"):
    """`Registry(registry).load_model(run, epoch)`: the reference model with the run's weights."""
    return Registry(registry).load_model(run, epoch, device)


def evaluate(run, epoch=None, registry=None, test_subset=None, device="cpu"):
    """`Registry(registry).evaluate(run, epoch)`: test nll, bpd and bpd8 as `pixelx eval`."""
    return Registry(registry).evaluate(run, epoch, test_subset, device)


def test_bpd8(run, epoch=None, registry=None, test_subset=None, device="cpu"):
    """`Registry(registry).test_bpd8(run, epoch)`: the test bpd8 `pixelx eval` prints."""
    return Registry(registry).test_bpd8(run, epoch, test_subset, device)
