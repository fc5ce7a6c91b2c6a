"""The keras seed's convex quadratic: f(w) = 0.5 w^T Q w - b^T w, w in R^100.

Built exactly like the seed's notebook: ``np.random.seed(0)``; Q from the
formula of scikit-learn's ``make_spd_matrix(100)`` (2018 version, drawing from
numpy's global generator); then ``b`` and ``w0`` from ``np.random.randn(100, 1)``.
The optimum is closed-form: ``w* = Q^-1 b`` and ``f* = -0.5 b^T Q^-1 b``.
"""

from __future__ import annotations

import dataclasses
import functools

import keras
import numpy as np
import tensorflow as tf

__all__ = ["QuadraticProblem", "make_problem", "QuadraticModel", "identity_loss"]


@dataclasses.dataclass(frozen=True)
class QuadraticProblem:
    """f(w) = 0.5 w^T Q w - b^T w with its start point and closed-form optimum.

    Attributes:
        Q: The symmetric positive-definite ``[dim, dim]`` matrix.
        b: The linear term, ``[dim, 1]``.
        w0: The start point, ``[dim, 1]``.
    """

    Q: np.ndarray
    b: np.ndarray
    w0: np.ndarray

    @property
    def dim(self) -> int:
        """The number of variables."""
        return self.Q.shape[0]

    def value(self, w: np.ndarray) -> float:
        """f(w), in float64.

        Args:
            w: A point: any array of ``dim`` values (reshaped to a column).

        Returns:
            The objective at ``w``.
        """
        w = np.asarray(w, np.float64).reshape(-1, 1)
        return float((0.5 * w.T @ self.Q @ w - self.b.T @ w).item())

    @functools.cached_property
    def optimum(self) -> float:
        """f* = -0.5 b^T Q^-1 b, the minimum of f (suboptimality is ``value(w) - optimum``)."""
        return float((-0.5 * self.b.T @ np.linalg.solve(self.Q, self.b)).item())


def _make_spd_matrix_2018(n_dim: int) -> np.ndarray:
    """scikit-learn 0.19's make_spd_matrix, drawing from numpy's global state."""
    a = np.random.rand(n_dim, n_dim)
    u, _, v = np.linalg.svd(a.T @ a)
    return u @ (1.0 + np.diag(np.random.rand(n_dim))) @ v


def make_problem(dim: int = 100, seed: int = 0) -> QuadraticProblem:
    """The seed notebook's problem: Q, then b, then w0 drawn after ``np.random.seed(seed)``.

    NumPy's global random state is restored afterwards.

    Args:
        dim: The number of variables (the seed's is 100).
        seed: The seed of NumPy's global generator for the draws.

    Returns:
        The problem.
    """
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        q = _make_spd_matrix_2018(dim)
        b = np.random.randn(dim, 1)
        w0 = np.random.randn(dim, 1)
    finally:
        np.random.set_state(state)
    return QuadraticProblem(Q=q, b=b, w0=w0)


@keras.saving.register_keras_serializable(package="tf_bng")
class QuadraticModel(keras.Model):
    """A model whose only weight is w and whose output is f(w) for every input row.

    Train it with :func:`identity_loss` on any input of shape ``[batch, 1]``:
    the per-example loss is f(w), so the mean loss is f(w).

    Args:
        dim: The number of variables (see :func:`make_problem`).
        seed: The problem's seed; w starts at the problem's ``w0``.
        **kwargs: Passed to ``keras.Model`` (``name``...).
    """

    def __init__(self, dim: int = 100, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.problem = make_problem(dim, seed)
        self.dim_, self.seed_ = dim, seed
        self.w = self.add_weight(
            name="w",
            shape=(dim, 1),
            initializer=keras.initializers.Constant(self.problem.w0),
        )
        self._q = tf.constant(self.problem.Q, tf.float32)
        self._b = tf.constant(self.problem.b, tf.float32)

    def call(self, x):
        """f(w), once per row of ``x`` (the input's values are not used)."""
        w = tf.convert_to_tensor(self.w)
        f = 0.5 * tf.reduce_sum(w * tf.matmul(self._q, w)) - tf.reduce_sum(self._b * w)
        return tf.fill(tf.shape(x)[:1], f)

    def get_config(self):
        return {"dim": self.dim_, "seed": self.seed_, "name": self.name}


def identity_loss(y_true, y_pred):
    """Per-example loss equal to the model output (for :class:`QuadraticModel`).

    Args:
        y_true: Ignored (the data carries no targets).
        y_pred: The model's output, f(w) per example.

    Returns:
        ``y_pred``.
    """
    del y_true
    return y_pred
