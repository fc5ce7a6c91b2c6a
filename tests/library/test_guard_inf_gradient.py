"""A finite loss with an infinite gradient (what a loss-scale overflow looks like) is skipped.

The step's one finiteness decision is read off the transform's norms; the
input-NaN tests elsewhere also make the loss non-finite, so they cannot tell
whether the gradient check works. Here only the gradient is infinite.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_bng
from tf_bng.gradient_transforms import ScaleBlocks


class SqrtAtZero(keras.layers.Layer):
    """x + sqrt(w) with w = 0: the output and the loss are finite, d/dw is inf."""

    def build(self, input_shape):
        self.w = self.add_weight(name="w", shape=(), initializer="zeros")

    def call(self, x):
        return x + tf.sqrt(self.w)


@pytest.mark.parametrize("mode", ["per_block", "vectorized"])
@pytest.mark.parametrize("transform", ["ng", "ng_adap", "clip", "none"])
def test_an_infinite_gradient_with_a_finite_loss_is_skipped(mode, transform, monkeypatch):
    if mode == "vectorized":
        monkeypatch.setattr(ScaleBlocks, "vectorize_min_blocks", 1)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(3, name="dense"),
            SqrtAtZero(name="sqrt"),
            keras.layers.Dense(2, name="out"),
        ]
    )
    step = tf_bng.TrainStep(
        model=model,
        loss=keras.losses.MeanSquaredError(),
        optimizer=keras.optimizers.SGD(0.1),
        transform=transform,
        global_batch_size=4,
        skip_nonfinite=True,
    )
    x = np.ones((4, 3), np.float32)
    y = np.zeros((4, 2), np.float32)
    before = model.get_weights()
    loss = step.step((x, y)).loss
    assert np.isfinite(float(loss))
    assert int(step.bad_steps.total.numpy()) == 1
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
