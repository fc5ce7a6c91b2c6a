"""The staged train step (issue 21): what a step returns, the explicit backward-scaling stage,
and the one accumulator the step and the wrappers share."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_bng
from tf_bng.step import BackwardScaling, GradientAccumulator, StepOutput


def _model(seed: int = 0, dtype: str = "float32") -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(6, activation="tanh", dtype=dtype),
            keras.layers.Dense(3, dtype=dtype),
        ]
    )


def _batches(n: int):
    rng = np.random.default_rng(1)
    return [
        (rng.normal(size=(8, 5)).astype(np.float32), rng.integers(0, 3, size=(8,)).astype(np.int32))
        for _ in range(n)
    ]


def _step(model, **kwargs) -> tf_bng.TrainStep:
    kwargs.setdefault("transform", "ng")
    return tf_bng.TrainStep(
        model=model,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        optimizer=keras.optimizers.SGD(0.1),
        global_batch_size=8,
        **kwargs,
    )


@pytest.mark.parametrize("dtype", ["float32", "float16", "float64"])
def test_a_loop_returns_the_last_step_and_the_loss_totals_of_all_its_steps(dtype):
    """Whatever the weights' dtype, the loop's outputs have the step's dtypes and shapes."""
    batches = _batches(3)
    single = _step(_model(dtype=dtype))
    outputs = [single.step(b) for b in batches]
    looped = _step(_model(dtype=dtype))
    stacked = tuple(np.stack(parts) for parts in zip(*batches))
    out = looped.loop(iter(tf.data.Dataset.from_tensor_slices(stacked)), tf.constant(3))
    assert isinstance(out, StepOutput)
    np.testing.assert_allclose(
        float(out.loss_total), sum(float(o.loss) for o in outputs), rtol=1e-6
    )
    assert int(out.losses_counted) == 3 and bool(out.applied)
    assert (int(out.bad_steps), int(out.bad_steps_in_a_row)) == (0, 0)
    np.testing.assert_allclose(out.block_norms.numpy(), outputs[-1].block_norms.numpy(), rtol=1e-6)
    assert out.block_norms.shape == (len(looped.block_names),) == out.block_scales.shape
    assert out.block_log10_norms.shape == (0,)  # only backward scaling reports them


def test_the_none_transform_reports_norms_but_no_factors():
    out = _step(_model(), transform="none").step(_batches(1)[0])
    assert out.block_norms.shape == (2,) and out.block_scales.shape == (0,)


def test_a_non_finite_step_is_not_applied_and_its_loss_is_not_counted():
    step = _step(_model())
    x, y = _batches(1)[0]
    x[0, 0] = np.nan
    out = step.step((x, y))
    assert not bool(out.applied) and int(out.losses_counted) == 0 and float(out.loss_total) == 0.0
    assert (int(out.bad_steps), int(out.bad_steps_in_a_row)) == (1, 1)


def test_backward_scaling_built_by_the_caller_trains_as_true_does():
    batches = _batches(3)
    runs = []
    for scaling in (True, "explicit"):
        model = _model()
        stage = BackwardScaling(model) if scaling == "explicit" else True
        step = _step(model, backward_scaling=stage)
        outs = [step.step(b) for b in batches]
        assert step.backward_scaling.forward_model is not model
        runs.append((model.get_weights(), outs[-1].block_log10_norms.numpy()))
    for a, b in zip(runs[0][0], runs[1][0]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert runs[0][1].shape == (2,)


def test_backward_scaling_of_another_model_or_of_another_kind_is_refused():
    with pytest.raises(ValueError, match="another model"):
        _step(_model(), backward_scaling=BackwardScaling(_model(1)))
    with pytest.raises(TypeError, match="True, False or a tf_bng.step.BackwardScaling"):
        _step(_model(), backward_scaling="yes")
    with pytest.raises(ValueError, match="only each block's direction"):
        _step(_model(), transform="clip", backward_scaling=True)


def test_the_step_and_the_wrappers_accumulate_with_the_same_accumulator():
    model = _model()
    step = _step(model, accumulation_steps=2)
    optimizer = tf_bng.NormalizedOptimizer(keras.optimizers.SGD(0.1), accumulation_steps=2)
    optimizer.build(model.trainable_variables)
    assert isinstance(step.accumulator, GradientAccumulator)
    assert type(optimizer._accumulator) is GradientAccumulator
    # The wrapper's sums are Keras variables: what a .keras file saves.
    assert all(isinstance(b, keras.Variable) for b in optimizer._accumulator.buffers)


@pytest.mark.parametrize("steps", [0, 1.5, True])
def test_accumulation_steps_are_checked_once_for_step_and_wrappers(steps):
    with pytest.raises(ValueError, match="accumulation_steps must be"):
        _step(_model(), accumulation_steps=steps)
    with pytest.raises(ValueError, match="accumulation_steps must be"):
        tf_bng.NormalizedOptimizer(keras.optimizers.SGD(0.1), accumulation_steps=steps)


@pytest.mark.parametrize(
    "dtype, value",
    [("float32", 1e-30), ("float32", 1e30), ("float32", 1e38), ("float16", 6e4), ("float16", 1e-7)],
)
def test_the_accumulated_mean_is_exact_over_the_float_range(dtype, value):
    # float32 sums of float16 gradients, divided before the cast back: 2 x 6e4 overflows
    # float16 (max 65504), the mean does not; 2 x 1e38 stays inside float32 (max 3.4e38).
    variable = tf.Variable(tf.zeros([3], dtype))
    acc = GradientAccumulator([variable], 2)
    grad = tf.constant([value, -value, value / 2], dtype)
    acc.add([grad])
    acc.add([grad])
    (mean,) = acc.local_means([variable])
    assert mean.dtype == variable.dtype and acc.buffers[0].dtype == tf.float32
    np.testing.assert_array_equal(mean.numpy(), grad.numpy())
    acc.reset()
    (mean,) = acc.local_means([variable])
    np.testing.assert_array_equal(mean.numpy(), np.zeros(3, dtype))
