"""TrainStep under MirroredStrategy (2 logical CPUs) equals one device on the same global batch.

The equivalence model has no BatchNormalization on purpose: BN batch statistics are
per replica by design, so a BN model is *not* expected to match a single device. It
has Conv2D and Dense layers with l2 kernel regularizers, which exercises
``tf.nn.scale_regularization_loss``.

"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import (
    CLIP_THRESHOLD,
    GLOBAL_BATCH,
    OPTIMIZERS,
    STEPS,
    TRANSFORMS,
    build_step,
    distributed_batches,
    initial_weights,
    make_data,
    make_model,
    max_abs_diff,
    replica_copies_agree,
    replica_inputs,
    textbook_train,
    train,
)

import tf_bng
from tf_bng.problems.quadratic import identity_loss

# Every transform with SGD+momentum, every optimizer with NG: each transform and each
# optimizer is covered without the full product (each pair costs ~40 s of tracing).
PAIRS = sorted({(t, "sgd_momentum") for t in TRANSFORMS} | {("ng", o) for o in OPTIMIZERS})


@pytest.mark.parametrize("transform_name, optimizer_name", PAIRS)
@pytest.mark.slow  # trains or spawns: ~260 s (make test-fast skips it)
def test_mirrored_matches_single_device(mirrored_strategy, transform_name, optimizer_name):
    weights, data = initial_weights(), make_data()
    transform, make_optimizer = TRANSFORMS[transform_name], OPTIMIZERS[optimizer_name]
    single = train(tf.distribute.get_strategy(), weights, make_optimizer, transform, data)
    mirrored = train(mirrored_strategy, weights, make_optimizer, transform, data)

    first_half, second_half = replica_inputs(mirrored_strategy, data)
    assert not np.array_equal(first_half, second_half), "replicas must see different data"
    assert max_abs_diff(weights, single.weights) > 1e-3, "the run must actually train"
    assert max_abs_diff(mirrored.weights, single.weights) <= 2e-6
    assert replica_copies_agree(mirrored.model, mirrored_strategy) == 0.0
    np.testing.assert_allclose(mirrored.losses, single.losses, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.stack(mirrored.norms), np.stack(single.norms), rtol=1e-5)
    assert mirrored.step.block_names == single.step.block_names
    if transform_name == "clip":
        assert np.all(np.stack(single.norms) > CLIP_THRESHOLD), "clipping must be active"
    if transform_name == "global_clip":
        assert np.stack(single.norms).shape == (STEPS, 1)
        assert np.all(np.stack(single.norms) > CLIP_THRESHOLD)


def test_block_norms_are_the_global_gradient_norms():
    """The reported norms are the l2 norms of each layer's gradient of the whole-batch loss."""
    weights, data = initial_weights(), make_data(GLOBAL_BATCH)
    run = train(tf.distribute.get_strategy(), weights, keras.optimizers.SGD, "none", data)
    model = make_model()
    model.set_weights(weights)
    with tf.GradientTape() as tape:
        pred = model(data[0])
        loss = tf.reduce_mean(tf.square(pred - data[1])) + tf.add_n(model.losses)
    grads = tape.gradient(loss, model.trainable_variables)
    per_layer = np.array(
        [
            np.sqrt(sum(np.sum(np.square(g.numpy().astype(np.float64))) for g in grads[i : i + 2]))
            for i in range(0, len(grads), 2)
        ]
    )
    assert run.step.block_names == ("net/conv", "net/hidden", "net/out")
    np.testing.assert_allclose(run.norms[0], per_layer, rtol=1e-5)
    np.testing.assert_allclose(run.losses[0], float(loss), rtol=1e-6)


def test_replicas_see_different_halves_of_the_batch(mirrored_strategy):
    weights, data = initial_weights(), make_data(GLOBAL_BATCH)
    step = build_step(mirrored_strategy, weights, keras.optimizers.SGD, "none")
    x_halves = replica_inputs(mirrored_strategy, data)
    assert [len(h) for h in x_halves] == [GLOBAL_BATCH // 2] * 2
    np.testing.assert_array_equal(np.concatenate(x_halves), data[0])

    batch = next(iter(distributed_batches(mirrored_strategy, data)))
    per_replica_loss = mirrored_strategy.run(
        lambda b: step.gradients.loss(b[0], b[1], None, training=False)[0], args=(batch,)
    )
    losses = [float(t) for t in mirrored_strategy.experimental_local_results(per_replica_loss)]
    assert abs(losses[0] - losses[1]) > 1e-3 * max(abs(losses[0]), abs(losses[1]))


def test_keras_sums_gradients_inside_apply(mirrored_strategy):
    """Guard: the step divides by the replica count because Keras re-sums in ``apply``.

    If Keras ever stops all-reducing inside ``optimizer.apply``, every replica's
    update shrinks by the replica count and this test fails (so must
    ``tf_bng.distributed.divide_for_keras_sum``'s premise).
    """
    with mirrored_strategy.scope():
        v = keras.Variable(np.zeros([3], np.float32))
        optimizer = keras.optimizers.SGD(learning_rate=1.0)
        optimizer.build([v])

    @tf.function
    def apply_ones():
        mirrored_strategy.run(lambda: optimizer.apply([tf.ones([3])], [v]))

    apply_ones()
    replicas = mirrored_strategy.num_replicas_in_sync
    assert replicas == 2
    for copy in mirrored_strategy.experimental_local_results(v.value):
        np.testing.assert_array_equal(copy.numpy(), -float(replicas) * np.ones(3))


class LinearProbe(keras.Model):
    """pred = x . w with w in R^2: the mean loss's gradient is the mean of x."""

    def __init__(self):
        super().__init__()
        self.w = self.add_weight(shape=(2, 1), initializer="zeros", name="w")
        self.build((None, 2))

    def call(self, x):
        return tf.matmul(x, self.w)


def probe_loss(y_true, y_pred):
    """Per-example loss = prediction, so the gradient of example k is x_k."""
    return identity_loss(y_true, y_pred)[:, 0]


def test_keras_global_clipnorm_is_wrong_under_replicas_and_the_step_is_right(mirrored_strategy):
    # Replica 0 gets [6, 0], replica 1 gets [0, 8]: per-replica grads [3, 0] and [0, 4].
    x = np.array([[6.0, 0.0], [0.0, 8.0]], np.float32)
    data, start = (x, np.zeros([2, 1], np.float32)), [np.zeros([2, 1], np.float32)]
    gradient = x.astype(np.float64).mean(axis=0)  # [3, 4], norm 5
    correct = -gradient * min(1.0, 1.0 / np.linalg.norm(gradient))  # [-0.6, -0.8]

    def keras_clipping():
        return keras.optimizers.SGD(learning_rate=1.0, global_clipnorm=1.0)

    probe = {"model_fn": LinearProbe, "global_batch_size": 2}
    one_device = textbook_train(
        tf.distribute.get_strategy(), start, keras_clipping, data, loss_fn=probe_loss, **probe
    )
    np.testing.assert_allclose(one_device[0].ravel(), correct, rtol=1e-6)
    keras_mirrored = textbook_train(
        mirrored_strategy, start, keras_clipping, data, loss_fn=probe_loss, **probe
    )[0].ravel()
    np.testing.assert_allclose(keras_mirrored, [-1.0, -1.0], rtol=1e-6)  # clipped per replica
    assert np.max(np.abs(keras_mirrored - correct)) > 0.1

    run = train(
        mirrored_strategy,
        start,
        lambda: keras.optimizers.SGD(learning_rate=1.0),
        tf_bng.TransformConfig(transform="global_clip", threshold=1.0),
        data,
        loss=identity_loss,
        **probe,
    )
    np.testing.assert_allclose(run.weights[0].ravel(), correct, rtol=1e-6)


# -- TrainStep argument checks and the multi-step loop ---------------------------------------


def test_rejects_batch_not_divisible_by_replicas(mirrored_strategy):
    with mirrored_strategy.scope():
        model = make_model()
    with pytest.raises(ValueError, match=r"Global batch size 7 is not divisible by the 2 replicas"):
        tf_bng.TrainStep(
            model=model,
            loss="mse",
            optimizer=keras.optimizers.SGD(),
            global_batch_size=7,
            strategy=mirrored_strategy,
        )


@pytest.mark.parametrize("clip", ["clipnorm", "global_clipnorm", "clipvalue"])
def test_rejects_keras_clipping_under_two_replicas(mirrored_strategy, clip):
    with mirrored_strategy.scope():
        model = make_model()
        optimizer = keras.optimizers.SGD(**{clip: 1.0})
    with pytest.raises(ValueError, match=rf"optimizer\.{clip} is set.*transform='clip'"):
        tf_bng.TrainStep(
            model=model,
            loss="mse",
            optimizer=optimizer,
            global_batch_size=GLOBAL_BATCH,
            strategy=mirrored_strategy,
        )


def test_keras_clipping_is_allowed_on_one_device():
    step = tf_bng.TrainStep(
        model=make_model(),
        loss="mse",
        optimizer=keras.optimizers.SGD(clipnorm=1.0),
        global_batch_size=GLOBAL_BATCH,
    )
    assert step.strategy.num_replicas_in_sync == 1


def test_rejects_unbuilt_model():
    model = keras.Sequential([keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="Build the model"):
        tf_bng.TrainStep(
            model=model,
            loss="mse",
            optimizer=keras.optimizers.SGD(),
            global_batch_size=GLOBAL_BATCH,
        )


def test_loop_equals_repeated_step(mirrored_strategy):
    """``loop(iterator, n)`` (one tf.function for n steps) == n calls of ``step``."""
    weights, data = initial_weights(), make_data()
    make_optimizer = OPTIMIZERS["adam"]
    stepped = train(mirrored_strategy, weights, make_optimizer, "ng", data)

    looped = build_step(mirrored_strategy, weights, make_optimizer, "ng")
    batches = iter(distributed_batches(mirrored_strategy, data))
    loss, norms = looped.loop(batches, tf.constant(STEPS))[:2]
    assert int(looped.optimizer.iterations.numpy()) == STEPS
    assert max_abs_diff(looped.model.get_weights(), stepped.weights) <= 1e-6
    np.testing.assert_allclose(float(loss), stepped.losses[-1], rtol=1e-5)
    np.testing.assert_allclose(norms.numpy(), stepped.norms[-1], rtol=1e-5)
