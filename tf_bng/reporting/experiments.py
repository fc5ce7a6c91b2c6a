"""What the reproduction report runs: sections of variants of the project's own configs.

A :class:`Variant` is one ``trainers.train`` invocation (a ``configs/*.py``
file, its variant argument and ``--config.*`` overrides), so every curve in
the report can be re-run by hand with the command it prints. A
:class:`Scale` sets how much is run (``full`` for ``make report``, ``quick``,
``smoke`` for the test); the sections are the same at every scale.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Optional

__all__ = [
    "Variant",
    "Section",
    "Scale",
    "SCALES",
    "OPTIMIZER_LABELS",
    "TRANSFORM_LABELS",
    "QUADRATIC_LEARNING_RATES",
    "build_sections",
    "unique_variants",
]

OPTIMIZER_LABELS = {"momentum": "SGDM", "nesterov": "SGDM", "adagrad": "AdaGrad", "adam": "Adam"}
TRANSFORM_LABELS = {"none": "", "ng": "NG", "ng_adap": "NGadap", "clip": "CLIP"}
# Issue 5: the learning rates of the seed's "normalized Adam" sweep, used for all four methods.
QUADRATIC_LEARNING_RATES = (0.001, 0.005, 0.01, 0.03, 0.05, 0.1)
# Only the final checkpoint: per-epoch checkpoints would cost time and disk for nothing here.
_FINAL_CHECKPOINT_ONLY = 10**9


@dataclasses.dataclass(frozen=True)
class Variant:
    """One run: ``python -m trainers.train --config=configs/<experiment>.py:<arg> <overrides>``."""

    name: str  # unique; also the run directory under the report's workdir
    label: str  # legend text
    experiment: str  # configs/<experiment>.py
    args: tuple[tuple[str, Any], ...]  # the config file's variant argument, in order
    overrides: tuple[tuple[str, Any], ...] = ()  # (section.key, value)

    @property
    def arg(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.args)

    def value(self, key: str, default: Any = None) -> Any:
        """A variant argument (``"depth"``) or an override (``"optimizer.learning_rate"``)."""
        return dict(self.args + self.overrides).get(key, default)

    @property
    def optimizer(self) -> str:
        return self.value("optimizer")

    @property
    def transform(self) -> str:
        return self.value("transform")

    def build_config(self):
        """The locked ml_collections config that ``trainers.train`` would build."""
        module = importlib.import_module(f"configs.{self.experiment}")
        config = module.get_config(self.arg)
        for key, value in self.overrides:
            section, _, field = key.rpartition(".")
            target = config
            for part in filter(None, section.split(".")):
                target = target[part]
            target[field] = value
        return config

    def command(self, workdir_root: str) -> str:
        """The shell command that reproduces this run alone."""
        parts = [
            "python -m trainers.train",
            f"--config=configs/{self.experiment}.py:{self.arg}",
            *(f"--config.{k}={_flag_value(v)}" for k, v in self.overrides),
            f"--workdir={workdir_root.rstrip('/')}/{self.name}",
        ]
        return " ".join(parts)


def _flag_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


@dataclasses.dataclass(frozen=True)
class Section:
    """A block of the report: its variants (runs may be shared with other sections)."""

    key: str
    title: str
    variants: tuple[Variant, ...]


@dataclasses.dataclass(frozen=True)
class Scale:
    """How much to run. ``full`` follows the configs (the paper's epochs where CPU time allows)."""

    name: str
    depths: tuple[int, ...] = (6, 12, 18)
    optimizers: tuple[str, ...] = ("momentum", "adagrad", "adam")
    mlp_epochs: float = 50.0
    quadratic_learning_rates: tuple[float, ...] = QUADRATIC_LEARNING_RATES
    quadratic_steps: int = 1000
    quadratic_log_every: int = 1  # 1: f - f* at every iterate, not a window mean
    deep_mlp_depth: int = 30
    deep_mlp_epochs: float = 20.0
    data_limit: Optional[int] = None  # examples per split (smoke only)

    def __post_init__(self):
        if not self.depths or not self.optimizers or not self.quadratic_learning_rates:
            raise ValueError("A scale needs at least one depth, optimizer and learning rate.")
        if "adam" not in self.optimizers:
            raise ValueError("The Figure 1 findings are about Adam: keep 'adam' in optimizers.")


SCALES: dict[str, Scale] = {
    "full": Scale(name="full"),
    # About 4 minutes on a loaded 2-core machine: ~40% of the time is tracing and set-up per run,
    # so quick runs fewer variants (no AdaGrad, 3 learning rates, a 10-layer deep MLP), not only
    # fewer epochs.
    "quick": Scale(
        name="quick",
        optimizers=("momentum", "adam"),
        mlp_epochs=6.0,
        quadratic_learning_rates=(0.001, 0.01, 0.1),
        quadratic_steps=300,
        quadratic_log_every=5,
        deep_mlp_depth=10,
        deep_mlp_epochs=2.0,
    ),
    "smoke": Scale(
        name="smoke",
        depths=(1, 2),
        optimizers=("adam",),
        mlp_epochs=2.0,
        quadratic_learning_rates=(0.01,),
        quadratic_steps=20,
        quadratic_log_every=5,
        deep_mlp_depth=2,
        deep_mlp_epochs=1.0,
        data_limit=200,
    ),
}


def _label(optimizer: str, transform: str) -> str:
    suffix = TRANSFORM_LABELS[transform]
    return OPTIMIZER_LABELS.get(optimizer, optimizer) + (f"+{suffix}" if suffix else "")


def _data_overrides(scale: Scale) -> tuple[tuple[str, Any], ...]:
    return (("data.limit", scale.data_limit),) if scale.data_limit else ()


def _classifier_overrides(scale: Scale, epochs: float) -> tuple[tuple[str, Any], ...]:
    return (
        ("train.epochs", float(epochs)),
        ("train.checkpoint_every", _FINAL_CHECKPOINT_ONLY),
    ) + _data_overrides(scale)


def mlp_variant(scale: Scale, depth: int, optimizer: str, transform: str) -> Variant:
    """Paper §4.1 (configs/mnist_mlp.py): sigmoid MLP, ``depth`` hidden layers, mnist5k."""
    return Variant(
        name=f"mnist_mlp/depth{depth}-{optimizer}-{transform}",
        label=_label(optimizer, transform),
        experiment="mnist_mlp",
        args=(("depth", depth), ("optimizer", optimizer), ("transform", transform)),
        overrides=_classifier_overrides(scale, scale.mlp_epochs),
    )


def quadratic_variant(scale: Scale, optimizer: str, transform: str, learning_rate: float) -> Variant:
    """The keras seed's quadratic (configs/quadratic.py) at one learning rate."""
    names = {("nesterov", "ng"): "NSGD", ("adam", "ng"): "NAdam"}
    return Variant(
        name=f"quadratic/{optimizer}-{transform}-lr{learning_rate:g}",
        label=names.get((optimizer, transform), _label(optimizer, transform)),
        experiment="quadratic",
        args=(("optimizer", optimizer), ("transform", transform), ("steps", scale.quadratic_steps)),
        overrides=(
            ("optimizer.learning_rate", float(learning_rate)),
            ("train.log_every", scale.quadratic_log_every),
        ),
    )


def deep_mlp_variant(scale: Scale, optimizer: str, transform: str) -> Variant:
    """The keras seed's deep MLP (configs/deep_mlp.py): 30 x (Dense 128, BN, dropout)."""
    names = {("nesterov", "ng"): "NSGD", ("adam", "ng"): "NAdam"}
    return Variant(
        name=f"deep_mlp/depth{scale.deep_mlp_depth}-{optimizer}-{transform}",
        label=names.get((optimizer, transform), _label(optimizer, transform)),
        experiment="deep_mlp",
        args=(("depth", scale.deep_mlp_depth), ("optimizer", optimizer), ("transform", transform)),
        overrides=_classifier_overrides(scale, scale.deep_mlp_epochs),
    )


def build_sections(scale: Scale) -> tuple[Section, ...]:
    """The report's four run sections (the GPU-scale fifth runs nothing)."""
    figure1 = tuple(
        mlp_variant(scale, depth, optimizer, transform)
        for depth in scale.depths
        for optimizer in scale.optimizers
        for transform in ("none", "ng")
    )
    quadratic = tuple(
        quadratic_variant(scale, optimizer, transform, lr)
        for optimizer, transform in (
            ("nesterov", "ng"), ("adam", "ng"), ("nesterov", "none"), ("adam", "none")
        )
        for lr in scale.quadratic_learning_rates
    )
    deep = tuple(
        deep_mlp_variant(scale, optimizer, transform)
        for optimizer, transform in (("nesterov", "ng"), ("adam", "ng"), ("adam", "none"))
    )
    deepest = max(scale.depths)
    against_ng = tuple(
        mlp_variant(scale, deepest, optimizer, transform)
        for optimizer in scale.optimizers
        for transform in ("none", "ng", "ng_adap", "clip")
    )
    return (
        Section("figure1", "Paper Figure 1: deep sigmoid MLP on MNIST-5k", figure1),
        Section("quadratic", "The keras seed's convex quadratic", quadratic),
        Section("deep_mlp", "The keras seed's deep MLP on MNIST-5k", deep),
        Section("adaptive", f"NGadap and CLIP against NG at depth {deepest}", against_ng),
    )


def unique_variants(sections: tuple[Section, ...]) -> tuple[Variant, ...]:
    """Every run once, in report order; a shared name must mean the same run."""
    seen: dict[str, Variant] = {}
    for section in sections:
        for variant in section.variants:
            previous = seen.setdefault(variant.name, variant)
            if previous != variant:
                raise ValueError(f"Two different runs are both named {variant.name!r}.")
    return tuple(seen.values())
