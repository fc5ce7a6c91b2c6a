"""Wrappers under a mixed_float16 policy in model.fit.

model.compile wraps the optimizer as LossScaleOptimizer(wrapper). Keras's
LossScaleOptimizer divides the gradients by its loss scale *before* calling
the inner optimizer's apply (keras/src/optimizers/loss_scale_optimizer.py,
``_stateful_handle_finite_grads``), so the wrapper transforms true gradients.
The clipping case proves it: a still-scaled gradient (x 32768) would always
be clipped, a true one here never is.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from helpers import max_abs_diff, seed_classification_data, seed_mlp, weights_of

from tf_bng.wrappers import ClippedOptimizer, NormalizedOptimizer


@pytest.fixture
def restore_policy():
    previous = keras.mixed_precision.dtype_policy()
    yield
    keras.mixed_precision.set_dtype_policy(previous)


def one_epoch_update(policy, make_optimizer):
    """The weight change of one epoch (2 full-batch steps), and the compiled optimizer."""
    keras.mixed_precision.set_dtype_policy(policy)
    x, y = seed_classification_data(n=128)
    model = seed_mlp()
    model.compile(make_optimizer(), "sparse_categorical_crossentropy")
    w0 = weights_of(model)
    model.fit(x, y, epochs=1, batch_size=64, shuffle=False, verbose=0)
    return [w - a for w, a in zip(weights_of(model), w0)], model.optimizer


@pytest.mark.usefixtures("restore_policy")
@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda: NormalizedOptimizer(keras.optimizers.SGD(0.1), "l2"),
        lambda: ClippedOptimizer(keras.optimizers.SGD(0.1), "l2", clipnorm=100.0),
    ],
    ids=["normalized", "clipped-not-active"],
)
def test_mixed_float16_update_matches_float32(make_optimizer):
    update32, opt32 = one_epoch_update("float32", make_optimizer)
    update16, opt16 = one_epoch_update("mixed_float16", make_optimizer)
    assert not isinstance(opt32, keras.optimizers.LossScaleOptimizer)
    assert isinstance(opt16, keras.optimizers.LossScaleOptimizer)
    assert type(opt16.inner_optimizer) is type(opt32)
    assert int(opt16.iterations) == 2
    largest = max(float(np.max(np.abs(u))) for u in update32)
    assert largest > 1e-3
    assert max_abs_diff(update32, update16) < 2e-3 * largest + 1e-6
