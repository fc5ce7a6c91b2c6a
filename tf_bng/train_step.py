"""Old import path of :mod:`tf_bng.step.train_step`; kept so existing code keeps working."""

from tf_bng.step.batches import to_float32, unpack_batch
from tf_bng.step.train_step import TrainStep, make_train_step

__all__ = ["TrainStep", "make_train_step", "unpack_batch", "to_float32"]
