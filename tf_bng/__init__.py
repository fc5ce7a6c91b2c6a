"""tf_bng: block-normalized gradient methods for TensorFlow 2 / Keras 3.

The public API is listed in one place: this module's ``__all__`` (the names
below and the public subpackages) and the ``__all__`` of each public
subpackage it lists (``backward_scaling``, ``data``, ``errors``,
``gradient_transforms``, ``models``, ``selectors``, ``step``, ``training``,
``wrappers``; ``training`` lists ``data_checks``, ``input_pipeline`` and
``runtime``). Each name is exported by one public module; the top level
re-exports the main classes and functions, and for those ``tf_bng.<name>``
is the documented path. Every other module (``tf_bng.norms``,
``tf_bng.step.train_step``...) is an implementation detail.
``tests/library/test_public_api.py`` pins the list.
"""

from tf_bng import (
    backward_scaling,
    data,
    errors,
    gradient_transforms,
    models,
    selectors,
    step,
    training,
    wrappers,
)
from tf_bng.adagrad_bng import AdaGradBNG
from tf_bng.backward_scaling import BackwardScale
from tf_bng.blocks import BLOCK_MODES, Partition, partition_variables
from tf_bng.norms import available_norms, get_norm, register_norm
from tf_bng.schedules import LinearWarmup, make_schedule
from tf_bng.step import EvalStep, TrainStep
from tf_bng.transforms import TRANSFORMS, BlockTransform, TransformConfig, transform_gradients
from tf_bng.wrappers import AdaptiveNormalizedOptimizer, ClippedOptimizer, NormalizedOptimizer

__all__ = [
    "available_norms",
    "get_norm",
    "register_norm",
    "BLOCK_MODES",
    "Partition",
    "partition_variables",
    "TRANSFORMS",
    "BlockTransform",
    "TransformConfig",
    "transform_gradients",
    "TrainStep",
    "EvalStep",
    "AdaGradBNG",
    "NormalizedOptimizer",
    "ClippedOptimizer",
    "AdaptiveNormalizedOptimizer",
    "BackwardScale",
    "LinearWarmup",
    "make_schedule",
    # the public subpackages
    "backward_scaling",
    "data",
    "errors",
    "gradient_transforms",
    "models",
    "selectors",
    "step",
    "training",
    "wrappers",
]

__version__ = "0.1.0"
