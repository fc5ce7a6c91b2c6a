"""What a train step returns, and the per-block record of the last applied update.

A step hands everything a training log needs back as one
:class:`StepOutput`, so the outer loop logs it without reaching into the
step; ``loop(iterator, n)`` returns the last step's output with the loss
totals summed over its n steps.
"""

from typing import NamedTuple

import tensorflow as tf

__all__ = ["StepOutput", "BlockRecord"]


class StepOutput(NamedTuple):
    """The outputs of one ``step`` (or the last step of a ``loop``).

    Attributes:
        loss: The step's mean loss over the global batch (the micro-batch's under
            accumulation).
        block_norms: Per block (``TrainStep.block_names``), the global gradient's norm
            before the transform; under accumulation, the last applied update's. Empty
            when no norms are computed.
        block_scales: Per block, the factor the transform multiplied it by (NGadap's trust
            ratio, a clip's factor); empty for the ``"none"`` transform, which changes nothing.
        block_log10_norms: Per block, log10 of the true norm (backward scaling only, where
            norms may leave float32's range); empty otherwise.
        applied: Whether this call applied an update (False for a skipped step and for an
            accumulation micro-batch that did not end its window).
        loss_total: The sum of the finite losses of the call's steps (a ``loop``: all of
            them); with ``losses_counted``, the mean a log reports.
        losses_counted: How many losses ``loss_total`` sums (int64).
        bad_steps: Skipped updates so far (int64; 0 without the guard).
        bad_steps_in_a_row: Skipped updates since the last applied one (int64).
    """

    loss: tf.Tensor
    block_norms: tf.Tensor
    block_scales: tf.Tensor
    block_log10_norms: tf.Tensor
    applied: tf.Tensor
    loss_total: tf.Tensor
    losses_counted: tf.Tensor
    bad_steps: tf.Tensor
    bad_steps_in_a_row: tf.Tensor


class BlockRecord(tf.Module):
    """Per block, the norms and factors of the last applied update (``last_*``).

    Create it inside ``strategy.scope()``; :meth:`keep` runs in cross-replica
    context with values that are the same on every replica.
    """

    def __init__(self, blocks: int):
        super().__init__(name="block_record")

        def variable(value, name):
            return tf.Variable(
                value,
                trainable=False,
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
                name=name,
            )

        self.norms = variable(tf.zeros([blocks]), "last_block_norms")
        self.scales = variable(tf.ones([blocks]), "last_block_scales")
        self.log10_norms = variable(tf.zeros([blocks]), "last_block_log10_norms")

    def keep(self, norms, scales, log10_norms) -> None:
        """Keeps what was reported (an empty report, when nothing was computed, leaves it)."""
        blocks = self.norms.shape[0]
        if norms.shape[0] == blocks:
            self.norms.assign(norms)
            self.scales.assign(scales)
        if log10_norms.shape[0] == blocks:
            self.log10_norms.assign(log10_norms)

    def read(self) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        return (
            tf.convert_to_tensor(self.norms),
            tf.convert_to_tensor(self.scales),
            tf.convert_to_tensor(self.log10_norms),
        )
