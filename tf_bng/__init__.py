"""tf_bng: block-normalized gradient methods for TensorFlow 2 / Keras 3."""

from tf_bng import backward_scaling, models, selectors
from tf_bng.adagrad_bng import AdaGradBNG
from tf_bng.backward_scaling import BackwardScale
from tf_bng.blocks import BLOCK_MODES, Partition, partition_variables
from tf_bng.norms import available_norms, get_norm, register_norm
from tf_bng.schedules import LinearWarmup, make_schedule
from tf_bng.step import EvalStep, TrainStep, make_train_step
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
    "make_train_step",
    "AdaGradBNG",
    "NormalizedOptimizer",
    "ClippedOptimizer",
    "AdaptiveNormalizedOptimizer",
    "EvalStep",
    "BackwardScale",
    "LinearWarmup",
    "make_schedule",
    "backward_scaling",
    "models",
    "selectors",
]

__version__ = "0.1.0"
