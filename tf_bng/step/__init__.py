"""The compiled steps: one training step, a pipeline of stages, and evaluation.

:class:`TrainStep` runs the stages in order (see :mod:`.train_step`), each
in its own module: loss and gradients, all-reduce, loss-scale unscale,
accumulation, transform, guard, apply; it returns a :class:`StepOutput`.
:class:`EvalStep` evaluates. They depend only on the transform layer below
them; the outer loop (:mod:`tf_bng.training`) is built on them.
"""

from tf_bng.step.accumulation import GradientAccumulator
from tf_bng.step.backward_scaling_stage import BackwardScaling
from tf_bng.step.batches import to_float32, unpack_batch
from tf_bng.step.eval_step import EvalStep
from tf_bng.step.guard import BadStepCounter
from tf_bng.step.loss_scaling import DynamicLossScale
from tf_bng.step.outputs import StepOutput
from tf_bng.step.train_step import TrainStep

__all__ = [
    "TrainStep",
    "StepOutput",
    "BackwardScaling",
    "GradientAccumulator",
    "EvalStep",
    "BadStepCounter",
    "DynamicLossScale",
    "unpack_batch",
    "to_float32",
]
