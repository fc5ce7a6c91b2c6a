"""Per-layer backward scaling: keep the backprop signal inside the float range, exactly.

NG and NGadap use only the direction of each block's gradient, so the
backward signal may be multiplied by any positive number between layers
without changing the update. A :class:`BackwardScale` layer is the identity
in the forward pass; in the backward pass it multiplies the gradient flowing
through it by ``2**e`` (a power of two: exact), with ``e`` chosen from that
same gradient so that its largest |element| lands at ``2**target``. The
largest element is gathered over all replicas first, so every replica uses
the same power and MirroredStrategy still equals one device. The power used
is kept in ``applied`` (the train step reads it to report true norms and to
bring the micro-batches of an accumulation window to one common factor).

:func:`insert_scale_points` puts one after every layer of a Sequential model
and after every layer call of a functional model that all paths pass through
(between layers, at residual-block outputs; never inside one branch of a
block, where two paths would get different factors).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf

__all__ = ["BackwardScale", "ScalePoints", "insert_scale_points", "find_scale_points",
           "power_of_two", "true_norms"]

# Per signal dtype: the power of two the largest |signal| is brought to, and the
# largest power a point applies. float16 (normal range 2**-14..2**16) aims low:
# a weight gradient sums the signal over the batch (x100 = 2**7 and more) and
# must not overflow either; its smallest elements may then become subnormal.
_TARGET = {"float16": -6.0, "bfloat16": 0.0, "float32": 0.0, "float64": 0.0}
_LIMIT = {"float16": 40.0, "bfloat16": 126.0, "float32": 126.0, "float64": 126.0}


def power_of_two(exponent: tf.Tensor) -> tf.Tensor:
    """``2**exponent`` as an exact float32 (the exponent rounded, clamped to [-126, 127])."""
    e = tf.cast(tf.clip_by_value(tf.round(exponent), -126.0, 127.0), tf.int32)
    return tf.bitcast(tf.bitwise.left_shift(e + 127, 23), tf.float32)


@keras.saving.register_keras_serializable(package="tf_bng")
class BackwardScale(keras.layers.Layer):
    """Identity forward; backward rescales the incoming gradient by a power of two.

    Place it between layers of a subclassed model (where every path passes)
    to use backward scaling with ``NormalizedOptimizer`` /
    ``AdaptiveNormalizedOptimizer`` in ``model.fit``, or let
    ``TrainStep(backward_scaling=True)`` insert the points itself.
    """

    def __init__(self, **kwargs):
        # The signal keeps its own dtype (float16 under mixed precision): the
        # target depends on it, and a cast here would move the overflow.
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.supports_masking = True

    def build(self, input_shape):
        self.applied = self.add_weight(
            name="applied_exponent", shape=(), initializer="zeros", trainable=False,
            dtype="float32", aggregation="only_first_replica",
        )
        super().build(input_shape)

    def call(self, inputs):
        @tf.custom_gradient
        def identity(x):
            def grad(dy):
                exponent = self._exponent_for(dy)
                self.applied.assign(exponent)
                return tf.cast(tf.cast(dy, tf.float32) * power_of_two(exponent), dy.dtype)

            return tf.identity(x), grad

        return identity(inputs)

    @staticmethod
    def _exponent_for(signal: tf.Tensor) -> tf.Tensor:
        """The power of two that brings the largest |signal| (over all replicas) to the target.

        A signal that is all zeros or not finite is passed on unchanged (0).
        """
        dtype = signal.dtype.name
        largest = tf.reduce_max(tf.abs(tf.cast(signal, tf.float32)))
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            # ReduceOp has no MAX: gather every replica's value, then take the largest.
            largest = tf.reduce_max(context.all_gather(largest[None], axis=0))
        ok = tf.logical_and(largest > 0, tf.math.is_finite(largest))
        safe = tf.where(ok, largest, 1.0)
        exponent = _TARGET.get(dtype, 0.0) - tf.round(tf.math.log(safe) / math.log(2.0))
        limit = _LIMIT.get(dtype, 126.0)
        return tf.where(ok, tf.clip_by_value(exponent, -limit, limit), 0.0)

    def compute_output_shape(self, input_shape):
        return input_shape


class ScalePoints(tf.Module):
    """The scale points of a model and, per variable, which points its gradient passes.

    ``downstream[i]`` lists the indices of the points whose factor multiplies
    the gradient of ``variables[i]``; :meth:`log2_factors` gives, per block of
    a partition, the log2 of its total factor (the same for all its variables).
    """

    def __init__(self, layers: Sequence[BackwardScale], downstream: dict):
        super().__init__(name="backward_scaling")
        self.layers = list(layers)
        self.applied = [layer.applied for layer in self.layers]
        self._downstream = dict(downstream)  # id(variable) -> tuple of point indices

    def block_matrix(self, variables: Sequence[Any], blocks: Sequence[Sequence[int]]) -> np.ndarray:
        """[blocks, points] 0/1: which points multiply each block's gradient.

        Raises when a block's variables see different points (a ``global``
        block across layers): its direction would change.
        """
        matrix = np.zeros((len(blocks), len(self.layers)), np.float32)
        for b, ix in enumerate(blocks):
            seen = {self._downstream.get(id(variables[i]), ()) for i in ix}
            if len(seen) > 1:
                raise ValueError(
                    "backward_scaling needs blocks whose variables all sit between the same scale "
                    "points (blocks='layer' or 'variable'); a block spans several layers here."
                )
            for p in seen.pop():
                matrix[b, p] = 1.0
        return matrix

    def log2_factors(self, matrix: np.ndarray) -> tf.Tensor:
        """Per row of ``matrix``: the log2 of the factor the last backward pass applied."""
        if not self.layers:
            return tf.zeros([matrix.shape[0]], tf.float32)
        exponents = tf.stack([tf.convert_to_tensor(e) for e in self.applied])
        return tf.linalg.matvec(tf.constant(matrix), exponents)

    def variable_matrix(self, variables: Sequence[Any]) -> np.ndarray:
        """[variables, points] 0/1: which points multiply each variable's gradient."""
        return self.block_matrix(variables, [[i] for i in range(len(variables))])


def find_scale_points(model: keras.Model) -> list:
    """The BackwardScale layers a model holds (placed by the user), in tracking order."""
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, BackwardScale)]


def _variable_ids(layer) -> list:
    return [id(v) for v in layer.weights]


def _sequential_with_points(model: keras.Sequential):
    if not model.inputs:
        raise ValueError("backward_scaling needs a built Sequential model with an Input.")
    inputs = keras.Input(batch_shape=model.inputs[0].shape, dtype=model.inputs[0].dtype)
    x, points, calls = inputs, [], []
    layers = list(model.layers)
    for index, layer in enumerate(layers):
        x = layer(x)
        calls.append(layer)
        if index < len(layers) - 1:
            point = BackwardScale(name=f"backward_scale_{len(points) + 1}")
            x = point(x)
            points.append((point, index))
    return keras.Model(inputs, x, name=f"{model.name}_scaled"), points, calls


def _functional_with_points(model: keras.Model):
    calls, producer, edges = [], {}, []

    def record(layer, *args, **kwargs):
        out = layer(*args, **kwargs)
        index = len(calls)
        calls.append(layer)
        for t in keras.tree.flatten((args, kwargs)):
            if isinstance(t, keras.KerasTensor):
                edges.append((producer.get(id(t), -1), index))
        for t in keras.tree.flatten(out):
            producer[id(t)] = index
        return out

    keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=record)
    last = len(calls) - 1
    cuts = {
        i for i in range(last)
        if not any(u < i < v for u, v in edges) and sum(1 for u, _ in edges if u == i) >= 1
    }
    points, counter = [], iter(range(len(calls)))

    def insert(layer, *args, **kwargs):
        out = layer(*args, **kwargs)
        index = next(counter)
        if index in cuts and isinstance(out, keras.KerasTensor):
            point = BackwardScale(name=f"backward_scale_{len(points) + 1}")
            points.append((point, index))
            return point(out)
        return out

    scaled = keras.models.clone_model(
        model, clone_function=lambda layer: layer, call_function=insert
    )
    return scaled, points, calls


def insert_scale_points(model: keras.Model) -> tuple[keras.Model, ScalePoints]:
    """A model sharing ``model``'s layers, with scale points where every path passes.

    Returns the model to train (same variables, identical forward pass) and
    its :class:`ScalePoints`. A model that already holds BackwardScale
    layers (a subclassed model) is returned as it is; its gradients' factors
    are then unknown to the step, which logs the norms it sees.
    """
    placed = find_scale_points(model)
    if placed:
        return model, ScalePoints(placed, {})
    if isinstance(model, keras.Sequential):
        scaled, points, calls = _sequential_with_points(model)
    elif isinstance(model, keras.Model) and type(model).__name__ == "Functional":
        scaled, points, calls = _functional_with_points(model)
    else:
        raise ValueError(
            f"backward_scaling inserts scale points in Sequential and functional models; "
            f"{type(model).__name__} is subclassed: place tf_bng.BackwardScale() layers in it "
            "yourself, between layers every path passes."
        )
    downstream: dict[int, tuple] = {}
    for call_index, layer in enumerate(calls):
        after = tuple(p for p, (_, at) in enumerate(points) if at >= call_index)
        for vid in _variable_ids(layer):
            downstream.setdefault(vid, after)
    return scaled, ScalePoints([p for p, _ in points], downstream)


def log10_of(log2_values: tf.Tensor) -> tf.Tensor:
    return log2_values * math.log10(2.0)


def true_norms(scaled: tf.Tensor, log2_factor: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """``(norm, log10 norm)`` of gradients that carried ``2**log2_factor`` (float32; 0 if tiny)."""
    scaled = tf.cast(scaled, tf.float32)
    log10 = tf.math.log(scaled) / math.log(10.0) - log10_of(log2_factor)
    return tf.pow(10.0, log10), log10

