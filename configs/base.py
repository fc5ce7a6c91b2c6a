"""Shared defaults of every experiment config: the one place that defines the key schema.

Each ``configs/<experiment>.py`` has ``get_config(arg=None)`` that starts
from :func:`get_base_config`, fills in the experiment's numbers and applies
the variant picked by ``arg``. The variant syntax is comma-separated
``key=value`` pairs after the file name::

    configs/mnist_mlp.py:depth=18,optimizer=adam,transform=ng

Common variant keys (every experiment): ``optimizer`` (a preset of
:data:`OPTIMIZER_PRESETS`: sgd, momentum, nesterov, adam, adagrad,
adagrad_bng, or any Keras optimizer name) and ``transform`` (none, ng,
ng_adap, clip, global_clip). Experiments add their own (``depth``,
``dataset``, ``bptt``). Any single key can also be set afterwards with
``--config.<section>.<key>=value``; the config is locked, so a misspelt key
is an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ml_collections
from ml_collections import config_dict

from tf_bng.selectors import one_dimensional
from tf_bng.transforms import TransformConfig

__all__ = [
    "OPTIMIZER_PRESETS",
    "TRANSFORM_PRESETS",
    "get_base_config",
    "Variant",
    "parse_arg",
    "apply_optimizer",
    "apply_transform",
    "apply_common_variants",
]

# The paper's settings (§4): Adam 1e-3 (0.9, 0.999, 1e-8), AdaGrad 0.01.
OPTIMIZER_PRESETS: dict[str, dict[str, Any]] = {
    "sgd": dict(name="sgd", learning_rate=0.01),
    "momentum": dict(name="sgd", learning_rate=0.01, momentum=0.9),
    "nesterov": dict(name="sgd", learning_rate=0.01, momentum=0.9, nesterov=True),
    "adam": dict(name="adam", learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8),
    "adagrad": dict(name="adagrad", learning_rate=0.01),
    "adagrad_bng": dict(name="adagrad_bng", learning_rate=0.01, delta=1e-8),
    # LARS as practitioners run it (You et al. 2017): SGD momentum; the trust ratio is
    # ng_adap (see LARS_TRANSFORM); biases and normalization parameters (the rank <= 1
    # variables) keep out of the trust ratio and of weight decay; warmup then cosine.
    "lars": dict(
        name="sgd",
        learning_rate=1.0,
        momentum=0.9,
        exclude_from_weight_decay=("bias", "gamma", "beta"),
    ),
}
LARS_TRANSFORM = dict(
    name="ng_adap", alpha=0.001, groups=((one_dimensional, {"transform": "none"}),)
)
LARS_SCHEDULE = dict(name="cosine", warmup_epochs=5.0)
# The paper's best: NGadap alpha = 0.02, CLIP threshold 0.1.
TRANSFORM_PRESETS: dict[str, dict[str, Any]] = {
    "none": dict(name="none"),
    "ng": dict(name="ng"),
    "ng_adap": dict(name="ng_adap", alpha=0.02),
    "clip": dict(name="clip", threshold=0.1),
    "global_clip": dict(name="global_clip", threshold=0.1),
}


def get_base_config() -> ml_collections.ConfigDict:
    """Every section and shared key, with neutral defaults (unlocked: experiments add keys)."""
    c = ml_collections.ConfigDict()
    c.experiment = ""

    # tf_bng.data options; a dataset's own extra keys are added by its experiment. A key
    # left None takes the library's default (tf_bng.data documents them): one source.
    c.data = ml_collections.ConfigDict()
    c.data.name = "mnist5k"
    c.data.batch_size = 100  # global, summed over replicas
    c.data.data_dir = config_dict.placeholder(str)  # TFDS's default / $TF_BNG_DATA_DIR
    c.data.download = config_dict.placeholder(bool)  # library default: never download
    c.data.limit = config_dict.placeholder(int)  # cap on examples per split (smoke runs)
    c.data.split_seed = config_dict.placeholder(int)  # fixed train/test split (default 0)
    c.data.augment = config_dict.placeholder(bool)  # CIFAR/ImageNet crops and flips

    # tf_bng.models: ``name`` plus the model's own keys, added by the experiment.
    c.model = ml_collections.ConfigDict()
    c.model.name = "mlp"
    # BatchNorm statistics all-reduced over replicas; None: on under more than one replica
    # (tf_bng.models.layers.resolve_synchronized_batch_norm). Models without BatchNorm
    # other than the MLPs reject a value.
    c.model.synchronized_batch_norm = config_dict.placeholder(bool)

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.name = "sgd"  # any keras.optimizers class name, lowercase, or adagrad_bng
    c.optimizer.learning_rate = 0.01
    c.optimizer.momentum = 0.0
    c.optimizer.nesterov = False
    c.optimizer.weight_decay = 0.0  # Keras's decoupled decay, outside the transform
    c.optimizer.beta_1 = 0.9
    c.optimizer.beta_2 = 0.999
    c.optimizer.epsilon = 1e-7
    c.optimizer.delta = 1e-8  # adagrad_bng
    c.optimizer.exclude_from_weight_decay = ()  # variable-name patterns kept out of weight_decay

    c.schedule = ml_collections.ConfigDict()
    c.schedule.name = "constant"  # constant | piecewise | exponential | cosine | polynomial
    c.schedule.boundaries = ()  # piecewise: epochs where the rate is multiplied by decay_rate
    c.schedule.decay_rate = 0.1
    c.schedule.decay_epochs = 0.0  # exponential: epochs per decay_rate factor (0: whole run)
    c.schedule.warmup_epochs = 0.0  # linear warmup to learning_rate first (large batches)
    c.schedule.end_learning_rate = 0.0  # cosine / polynomial: the rate at the end
    c.schedule.power = 1.0  # polynomial

    # The library's TransformConfig defaults (clip threshold 1.0, eps 0, ...); the
    # TRANSFORM_PRESETS set the paper's values (clip 0.1) explicitly.
    library = TransformConfig()
    c.transform = ml_collections.ConfigDict()
    c.transform.name = library.transform  # none | ng | ng_adap | clip | global_clip
    c.transform.norm = library.norm
    c.transform.blocks = library.blocks  # layer (paper) | variable (keras seed) | global
    c.transform.alpha = library.alpha
    c.transform.threshold = library.threshold
    c.transform.exclude = tuple(library.exclude)  # regexes on variable.path
    c.transform.epsilon = library.epsilon  # 0: the paper's G/||G||; > 0 caps the gain at 1/eps
    c.transform.max_scale = config_dict.placeholder(float)  # cap on a block's scale (LARS clip)
    # Parameter groups, set in a config file: ((selector, {overrides}), ...), see
    # tf_bng.TransformConfig; selectors from tf_bng.selectors (path(regex), one_dimensional).
    c.transform.groups = tuple(library.groups)
    # Multiply the backprop signal by powers of two between layers (ng / ng_adap only):
    # very deep nets and float16 keep a nonzero gradient; the update is unchanged.
    c.transform.backward_scaling = False

    c.train = ml_collections.ConfigDict()
    c.train.epochs = 1.0
    c.train.steps = 0  # > 0 overrides epochs
    c.train.steps_per_loop = 50  # steps inside one tf.function call
    c.train.accumulation_steps = 1  # k > 1: one update from the mean gradient of k batches
    c.train.log_every = 0  # steps; 0: once per epoch
    c.train.eval_every = 0  # steps; 0: once per epoch
    c.train.checkpoint_every = 0  # steps; 0: once per epoch
    c.train.seed = 0
    c.train.fast_forward_input = True  # resume replays the exact input stream
    c.train.max_bad_steps = 20  # stop after this many non-finite steps in a row (0: never)
    c.train.keep_checkpoints = 3  # newest checkpoints kept in workdir/checkpoints

    c.runtime = ml_collections.ConfigDict()
    c.runtime.strategy = "default"  # default | one_device | mirrored | multi_worker | tpu
    c.runtime.virtual_cpus = 0  # > 1: split the CPU into that many logical devices
    c.runtime.mixed_precision = "none"  # none | mixed_float16 | mixed_bfloat16
    c.runtime.loss_scale_initial = 2.0**15
    c.runtime.loss_scale_growth_interval = 2000
    c.runtime.jit_compile = False  # XLA; slower on small CPUs, fails under mirrored on CPU
    c.runtime.deterministic = False
    c.runtime.tpu = ""  # TPU name or address for strategy=tpu
    c.runtime.collective_timeout = 300.0  # seconds, multi_worker
    c.runtime.startup_timeout = 120.0  # seconds to wait for every worker to join (0: unbounded)

    c.export = False  # write a SavedModel to workdir/export at the end
    return c


def _coerce(text: str, default: Any) -> Any:
    if isinstance(default, bool):
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"expected true or false, got {text!r}")
        return text.lower() in ("true", "1")
    if isinstance(default, int):
        return int(text)
    if isinstance(default, float):
        return float(text)
    return text


class Variant(dict):
    """The parsed variant; ``given`` holds the keys the argument named (the rest are defaults)."""

    given: frozenset = frozenset()


def parse_arg(arg: str | None, defaults: Mapping[str, Any]) -> Variant:
    """``"k1=v1,k2=v2"`` -> dict, typed like ``defaults``; unknown keys are an error."""
    values = Variant(defaults)
    given = set()
    for item in filter(None, (part.strip() for part in (arg or "").split(","))):
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or key not in defaults:
            raise ValueError(
                f"Config argument {item!r}: expected key=value with key in {', '.join(defaults)}."
            )
        try:
            values[key] = _coerce(text.strip(), defaults[key])
        except ValueError as e:
            raise ValueError(f"Config argument {key}: {e}") from None
        given.add(key)
    values.given = frozenset(given)
    return values


def apply_optimizer(
    config: ml_collections.ConfigDict, preset: str, overrides: Mapping[str, Any] | None = None
) -> None:
    """Set ``config.optimizer`` from a preset name (or a bare Keras optimizer name)."""
    settings = dict(OPTIMIZER_PRESETS.get(preset, {"name": preset}))
    settings.update(overrides or {})
    for key, value in settings.items():
        config.optimizer[key] = value


def apply_transform(config: ml_collections.ConfigDict, preset: str) -> None:
    if preset not in TRANSFORM_PRESETS:
        raise ValueError(f"Unknown transform {preset!r}; valid: {', '.join(TRANSFORM_PRESETS)}.")
    for key, value in TRANSFORM_PRESETS[preset].items():
        config.transform[key] = value


def apply_common_variants(
    config: ml_collections.ConfigDict,
    variant: Mapping[str, Any],
    optimizer_overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> ml_collections.ConfigDict:
    """Apply ``variant["optimizer"]`` / ``["transform"]``, name the experiment, lock.

    ``optimizer=adagrad_bng`` normalizes each block itself, so it turns an
    experiment's default transform off; a transform the argument names
    explicitly is kept (and then rejected by the config checks).
    """
    preset = variant["optimizer"]
    given = getattr(variant, "given", ("transform",))
    if preset == "adagrad_bng" and "transform" not in given:
        variant = {**variant, "transform": "none"}
    apply_optimizer(config, preset, (optimizer_overrides or {}).get(preset))
    if preset == "lars":
        if "transform" in given:
            raise ValueError(
                f"optimizer=lars brings its own transform (ng_adap, alpha 0.001, 1-D variables "
                f"excluded); drop transform={variant['transform']} from the config argument."
            )
        variant = {**variant, "transform": "ng_adap"}
        for key, value in LARS_TRANSFORM.items():
            config.transform[key] = value
        for key, value in LARS_SCHEDULE.items():
            config.schedule[key] = value
    else:
        apply_transform(config, variant["transform"])
    config.experiment += ":" + ",".join(f"{k}={v}" for k, v in variant.items())
    config.lock()
    return config
