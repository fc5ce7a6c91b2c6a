"""runtime.mirrored_strategy: its collective keys are its own, before and after it."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tf_bng.training import runtime

DEVICES = ["/cpu:0", "/cpu:1"]


def _all_reduce_sum(strategy, size: int) -> np.ndarray:
    @tf.function
    def step():
        def replica():
            ctx = tf.distribute.get_replica_context()
            return ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.ones([size]))

        return strategy.experimental_local_results(strategy.run(replica))[0]

    return step().numpy()


def test_a_plain_mirrored_strategy_made_afterwards_does_not_reuse_its_keys():
    """Without the second move, the plain strategy's first all-reduce (another shape) fails with
    "Shape mismatch in the collective instance 100" (seen when a README block ran after a test)."""
    ours = runtime.mirrored_strategy(DEVICES)
    np.testing.assert_array_equal(_all_reduce_sum(ours, 7), np.full(7, 2.0))
    plain = tf.distribute.MirroredStrategy(DEVICES)
    np.testing.assert_array_equal(_all_reduce_sum(plain, 3), np.full(3, 2.0))
