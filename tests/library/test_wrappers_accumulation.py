"""accumulation_steps, groups and max_scale on the model.fit wrappers (issue 11)."""

import keras
import numpy as np
import pytest
from helpers import max_abs_diff, seed_classification_data, seed_mlp, weights_of

import tf_bng

K = 4
BATCH = 32
WRAPPERS = {
    "normalized": lambda inner, **kw: tf_bng.NormalizedOptimizer(inner, **kw),
    "clipped": lambda inner, **kw: tf_bng.ClippedOptimizer(inner, clipnorm=0.1, **kw),
    "adaptive": lambda inner, **kw: tf_bng.AdaptiveNormalizedOptimizer(inner, alpha=0.02, **kw),
}


def _fit(wrapper, batch_size, x, y, **kw):
    model = seed_mlp()
    model.compile(
        optimizer=WRAPPERS[wrapper](keras.optimizers.SGD(0.1), **kw),
        loss="sparse_categorical_crossentropy",
    )
    model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    return model


@pytest.mark.parametrize("wrapper", sorted(WRAPPERS))
def test_k_batches_of_32_equal_one_batch_of_32k(wrapper):
    x, y = seed_classification_data(BATCH * K * 3)
    big = _fit(wrapper, BATCH * K, x, y)
    micro = _fit(wrapper, BATCH, x, y, accumulation_steps=K)
    assert int(micro.optimizer.iterations.numpy()) == 3
    assert max_abs_diff(weights_of(micro), weights_of(big)) <= 2e-6


def test_the_schedule_advances_once_per_update():
    x, y = seed_classification_data(BATCH * K * 2)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    model = seed_mlp()
    model.compile(
        optimizer=tf_bng.NormalizedOptimizer(keras.optimizers.SGD(schedule), accumulation_steps=K),
        loss="sparse_categorical_crossentropy",
    )
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 2
    assert float(model.optimizer.learning_rate) == pytest.approx(0.1 * 0.5**2)


def test_accumulation_groups_and_max_scale_survive_a_keras_file(tmp_path):
    x, y = seed_classification_data(BATCH * 6)
    groups = [
        (tf_bng.selectors.one_dimensional, {"transform": "none"}),
        (tf_bng.selectors.path("dense_1"), {"max_scale": 3.0}),
    ]
    model = seed_mlp()
    model.compile(
        optimizer=tf_bng.AdaptiveNormalizedOptimizer(
            keras.optimizers.SGD(0.1, momentum=0.9),
            alpha=0.01,
            accumulation_steps=K,
            groups=groups,
            max_scale=5.0,
        ),
        loss="sparse_categorical_crossentropy",
    )
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)  # 6 batches: mid-window
    path = str(tmp_path / "acc.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    opt = loaded.optimizer
    assert opt.accumulation_steps == K and opt.transform_config.max_scale == 5.0
    assert opt.transform_config.groups[0][0] is tf_bng.selectors.one_dimensional
    assert int(opt._accumulator.count.numpy()) == 6
    for a, b in zip(model.optimizer._accumulator.buffers, opt._accumulator.buffers):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # both continue identically
    more_x, more_y = seed_classification_data(BATCH * 2, seed=7)
    for m in (model, loaded):
        m.fit(more_x, more_y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    assert max_abs_diff(weights_of(model), weights_of(loaded)) == 0.0


def test_a_callable_selector_cannot_be_saved_and_says_so():
    opt = tf_bng.NormalizedOptimizer(keras.optimizers.SGD(), groups=[(lambda v: True, {})])
    with pytest.raises(ValueError, match="cannot be saved"):
        opt.get_config()


def test_under_mirrored_strategy_fit_accumulation_points_to_the_train_step(mirrored_strategy):
    x, y = seed_classification_data(BATCH * 2)
    with mirrored_strategy.scope():
        model = seed_mlp()
        model.compile(
            optimizer=tf_bng.NormalizedOptimizer(keras.optimizers.SGD(0.1), accumulation_steps=2),
            loss="sparse_categorical_crossentropy",
        )
    with pytest.raises(ValueError, match=r"TrainStep\(accumulation_steps=k\)"):
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
