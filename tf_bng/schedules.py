"""Learning-rate schedules by name, in steps, including large-batch warmup.

``make_schedule("cosine", 0.1, total_steps=10_000, warmup_steps=500)`` is the
large-batch recipe (LARS, Goyal et al.): linear warmup from ~0 to the peak
rate, then cosine (or polynomial) decay over the remaining steps. The decays
are Keras's own schedules; :class:`LinearWarmup` is the one piece Keras
lacks in a composable form (``CosineDecay`` has a warmup of its own, the
others none), so it wraps any schedule.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

__all__ = ["SCHEDULES", "LinearWarmup", "make_schedule"]

SCHEDULES = ("constant", "piecewise", "exponential", "cosine", "polynomial")
LearningRate = float | keras.optimizers.schedules.LearningRateSchedule


@keras.saving.register_keras_serializable(package="tf_bng")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup: ``peak * (step + 1) / warmup_steps``, then ``after(step - warmup_steps)``.

    The first step already trains (rate ``peak / warmup_steps``, not 0).

    Args:
        peak: The rate the warmup reaches.
        warmup_steps: The length of the warmup in steps.
        after: A schedule or a constant for the steps after the warmup, counted from 0;
            its first value should be ``peak``.

    Raises:
        ValueError: If ``warmup_steps`` is below 1.
    """

    def __init__(self, peak: float, warmup_steps: int, after: LearningRate):
        if int(warmup_steps) < 1:
            raise ValueError(f"warmup_steps must be >= 1, got {warmup_steps}.")
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)
        self.after = after

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warmup = self.peak * (step + 1.0) / float(self.warmup_steps)
        if callable(self.after):
            later = tf.cast(self.after(tf.maximum(step - self.warmup_steps, 0.0)), tf.float32)
        else:
            later = tf.constant(float(self.after), tf.float32)
        return tf.where(step < self.warmup_steps, warmup, later)

    def get_config(self):
        """The constructor arguments, with a schedule ``after`` serialized (Keras saving)."""
        after = self.after
        if isinstance(after, keras.optimizers.schedules.LearningRateSchedule):
            after = keras.saving.serialize_keras_object(after)
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "after": after}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config["after"], dict):
            config["after"] = keras.saving.deserialize_keras_object(config["after"])
        return cls(**config)


def make_schedule(
    name: str,
    learning_rate: float,
    *,
    total_steps: int,
    warmup_steps: int = 0,
    boundaries: Sequence[int] = (),
    decay_rate: float = 0.1,
    decay_steps: int = 0,
    end_learning_rate: float = 0.0,
    power: float = 1.0,
) -> LearningRate:
    """The schedule ``name`` (one of :data:`SCHEDULES`); every length is in steps.

    * constant: ``learning_rate``.
    * piecewise: multiplied by ``decay_rate`` at each step of ``boundaries``.
    * exponential: multiplied by ``decay_rate`` every ``decay_steps`` steps,
      continuously (``decay_steps`` 0: over the whole run).
    * cosine: from ``learning_rate`` to ``end_learning_rate`` along a half
      cosine over the steps after the warmup.
    * polynomial: ``(lr - end) * (1 - t)**power + end`` over those steps.

    Args:
        name: One of :data:`SCHEDULES`.
        learning_rate: The peak (and, for constant, the only) rate.
        total_steps: The run's length in steps; the decays span the steps after the
            warmup.
        warmup_steps: > 0 prepends a linear warmup to ``learning_rate``
            (:class:`LinearWarmup`).
        boundaries: piecewise: the increasing steps (> 0) where the rate drops.
        decay_rate: piecewise, exponential: the factor per boundary or per
            ``decay_steps``.
        decay_steps: exponential: the steps per ``decay_rate`` (0: the whole decay).
        end_learning_rate: cosine, polynomial: the final rate.
        power: polynomial: the exponent.

    Returns:
        A float (constant without warmup) or a Keras ``LearningRateSchedule``.

    Raises:
        ValueError: If ``name`` is unknown, ``warmup_steps`` is not in
            ``[0, total_steps)``, or ``boundaries`` are not increasing steps > 0.
    """
    if name not in SCHEDULES:
        raise ValueError(f"Unknown schedule {name!r}; valid: {', '.join(SCHEDULES)}.")
    lr = float(learning_rate)
    total_steps, warmup_steps = int(total_steps), int(warmup_steps)
    if warmup_steps < 0 or (warmup_steps and warmup_steps >= total_steps):
        raise ValueError(
            f"warmup_steps must be in [0, total_steps={total_steps}); got {warmup_steps}."
        )
    decaying = max(1, total_steps - warmup_steps)
    schedules = keras.optimizers.schedules
    after: LearningRate
    if name == "constant":
        after = lr
    elif name == "piecewise":
        steps = [int(b) for b in boundaries]
        if steps != sorted(set(steps)) or (steps and steps[0] <= 0):
            raise ValueError(f"boundaries must be increasing steps > 0; got {list(boundaries)!r}.")
        values = [lr * float(decay_rate) ** i for i in range(len(steps) + 1)]
        after = schedules.PiecewiseConstantDecay(steps, values) if steps else lr
    elif name == "exponential":
        after = schedules.ExponentialDecay(
            lr, decay_steps=int(decay_steps) or decaying, decay_rate=float(decay_rate)
        )
    elif name == "cosine":
        alpha = float(end_learning_rate) / lr if lr else 0.0
        after = schedules.CosineDecay(lr, decay_steps=decaying, alpha=alpha)
    else:
        after = schedules.PolynomialDecay(
            lr, decay_steps=decaying, end_learning_rate=float(end_learning_rate), power=float(power)
        )
    return LinearWarmup(lr, warmup_steps, after) if warmup_steps else after
