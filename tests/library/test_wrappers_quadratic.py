"""The keras seed's convex quadratic solved by NormalizedOptimizer(SGD Nesterov), 1,500 steps.

Measured (f - f* after k updates): k=100: 265.68, k=991: 47.66, k=1486: 23.11.
The loss is not strictly monotone: with momentum 0.9 it rises once, between
updates 4 and 5 (+0.31); from then on every update lowers it. The slow tail
comes from Q's condition number (about 4e4): a normalized step of fixed
length cannot exploit the large-curvature directions without oscillating.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_bng.problems.quadratic import QuadraticModel, make_problem
from tf_bng.wrappers import NormalizedOptimizer

STEPS = 1500
LR, MOMENTUM = 0.1, 0.9
CHECKPOINTS = (100, 991, 1486)


def numpy_reference(problem, steps):
    """f(w_k) - f* for k = 0..steps: NG + Keras's Nesterov SGD recursion in float64."""
    q, b, f_star = problem.Q, problem.b[:, 0], problem.optimum
    w, velocity, gaps = problem.w0[:, 0].copy(), np.zeros(problem.dim), []
    for _ in range(steps + 1):
        qw = q @ w
        gaps.append(0.5 * w @ qw - b @ w - f_star)
        g = qw - b
        g = g / (np.sqrt((g * g).sum()) + 1e-7)
        velocity = MOMENTUM * velocity - LR * g
        w = w + MOMENTUM * velocity - LR * g
    return np.array(gaps)


@pytest.fixture(scope="module")
def run():
    problem = make_problem()
    model = QuadraticModel()
    optimizer = NormalizedOptimizer(
        keras.optimizers.SGD(LR, momentum=MOMENTUM, nesterov=True), "l2"
    )
    optimizer.build(model.trainable_variables)
    x = tf.zeros([1, 1])

    @tf.function
    def train(steps):
        losses = tf.TensorArray(tf.float32, size=steps)
        for k in tf.range(steps):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(model(x))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply(grads, model.trainable_variables)
            losses = losses.write(k, loss)
        return losses.stack()

    losses = train(tf.constant(STEPS + 1)).numpy().astype(np.float64)  # f(w_0) .. f(w_1500)
    return problem, losses - problem.optimum, optimizer


def test_gap_matches_the_float64_reference(run):
    problem, gaps, optimizer = run
    expected = numpy_reference(problem, STEPS)
    np.testing.assert_allclose(gaps[list(CHECKPOINTS)], expected[list(CHECKPOINTS)], rtol=2e-3)
    np.testing.assert_allclose(gaps[list(CHECKPOINTS)], [265.68, 47.66, 23.11], rtol=2e-3)
    assert int(optimizer.iterations) == STEPS + 1


def test_loss_falls_monotonically_after_the_first_momentum_overshoot(run):
    _, gaps, _ = run
    rises = np.nonzero(np.diff(gaps) > 0)[0]
    assert rises.tolist() == [4]  # f(w_5) > f(w_4), once, by ~0.3
    assert np.all(np.diff(gaps[5:]) < 0)
    assert np.all(gaps > 0)


def test_gap_shrinks_toward_f_star(run):
    _, gaps, _ = run
    assert gaps[0] == pytest.approx(547.49, rel=1e-4)
    assert gaps[-1] < 0.05 * gaps[0]
    assert gaps[1000] / gaps[1486] > 1.9  # still closing, roughly like 1/k
