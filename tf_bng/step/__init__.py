"""The compiled steps: one training step (tape -> all-reduce -> transform -> apply) and evaluation.

Pieces: :class:`TrainStep` (with its non-finite guard, :mod:`.guard`, and
mixed-float16 loss scaling, :mod:`.loss_scaling`) and :class:`EvalStep`.
They depend only on the transform layer below them; the outer loop
(:mod:`tf_bng.training`) is built on them.
"""

from tf_bng.step.batches import to_float32, unpack_batch
from tf_bng.step.eval_step import EvalStep
from tf_bng.step.guard import BadStepCounter
from tf_bng.step.loss_scaling import DynamicLossScale
from tf_bng.step.train_step import TrainStep

__all__ = [
    "TrainStep",
    "EvalStep",
    "BadStepCounter",
    "DynamicLossScale",
    "unpack_batch",
    "to_float32",
]
