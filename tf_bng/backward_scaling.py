"""Per-layer backward scaling: keep the backprop signal inside the float range, exactly.

NG and NGadap use only the direction of each block's gradient, so the
backward signal may be multiplied by any positive number between layers
without changing the update. A :class:`BackwardScale` layer is the identity
in the forward pass and multiplies the gradient flowing back through it by
``2**exponent`` (a power of two: exact). After each backward pass it
proposes the exponent for the next step from the largest |signal| it passed
on, gathered over replicas (the largest) so every replica agrees; the proposal is
committed by the train step once per update (fixed within an accumulation
window), or by the layer itself (``auto_commit``) when used with
``model.fit`` and the wrapper optimizers.

:func:`insert_scale_points` puts one after every layer of a Sequential model
and after every layer call of a functional model that all paths pass through
(between layers, at residual-block outputs; never inside one branch of a
block, where two paths would get different factors).
"""

from __future__ import annotations

import math
import threading
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf

__all__ = ["BackwardScale", "ScalePoints", "insert_scale_points", "find_scale_points"]

# (band, jump) in powers of two per compute dtype: the largest |signal| after a
# point is kept within 2**±band of 1 (float16's normal range is 2**-14..2**16);
# a signal that overflowed moves the exponent down by jump.
_BANDS = {"float16": (6.0, 8.0), "bfloat16": (20.0, 40.0), "float32": (20.0, 40.0),
          "float64": (100.0, 200.0)}
_MAX_EXPONENT = {"float16": 24.0, "bfloat16": 120.0, "float32": 120.0, "float64": 1000.0}


def _power_of_two(exponent: tf.Tensor) -> tf.Tensor:
    """``2**exponent`` as an exact float32 (the exponent rounded, clamped to [-126, 127])."""
    e = tf.cast(tf.clip_by_value(tf.round(exponent), -126.0, 127.0), tf.int32)
    return tf.bitcast(tf.bitwise.left_shift(e + 127, 23), tf.float32)


class _Chain(threading.local):
    """The shifts the points above chose in the current backward pass, per replica thread.

    Backprop reaches the points nearest the loss first; each adds the shift
    it chose, and the next point down reads the sum. A plain Python value
    (a tensor while tracing): the gradient functions of one backward pass
    run, or are traced, in that order. Thread-local because MirroredStrategy
    traces each replica in its own thread.
    """

    def reset(self) -> None:
        self.value = None

    def carry(self) -> tf.Tensor:
        value = getattr(self, "value", None)
        return tf.zeros([], tf.float32) if value is None else value

    def set_carry(self, value: tf.Tensor) -> None:
        self.value = value


_CHAIN = _Chain()


@keras.saving.register_keras_serializable(package="tf_bng")
class BackwardScale(keras.layers.Layer):
    """Identity forward; backward multiplies the incoming gradient by ``2**exponent``.

    Place it between layers of a subclassed model (where every path passes)
    to use backward scaling with ``NormalizedOptimizer`` /
    ``AdaptiveNormalizedOptimizer`` in ``model.fit``, or let
    ``TrainStep(backward_scaling=True)`` insert the points itself.
    """

    def __init__(self, auto_commit: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.auto_commit = bool(auto_commit)
        self.supports_masking = True

    def build(self, input_shape):
        kw = dict(shape=(), initializer="zeros", trainable=False, dtype="float32",
                  aggregation="only_first_replica")
        self.exponent = self.add_weight(name="exponent", **kw)
        self.pending = self.add_weight(name="pending_exponent", **kw)
        super().build(input_shape)

    def call(self, inputs):
        return self._scaled_backward(inputs, tf.convert_to_tensor(self.exponent))

    def _propose(self, signal: tf.Tensor, exponent: tf.Tensor) -> tf.Tensor:
        """The exponent for the next step, given the signal this point passed on (``dx``).

        The points above this one (nearer the loss) already chose their shifts
        in this backward pass: ``carry`` is their sum, by which this point's
        input will change next step. The point shifts only when its predicted
        output leaves the band; a signal that reached 0 keeps the exponent
        (once the points above are fixed it arrives nonzero), one that
        overflowed goes down by ``jump``.
        """
        dtype = signal.dtype.name
        band, jump = _BANDS.get(dtype, _BANDS["float32"])
        largest = tf.reduce_max(tf.abs(tf.cast(signal, tf.float32)))
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            # ReduceOp has no MAX: gather every replica's value, then take the largest.
            largest = tf.reduce_max(context.all_gather(largest[None], axis=0))
        carry = _CHAIN.carry()
        predicted = tf.math.log(largest) / math.log(2.0) + carry
        shift = tf.where(
            largest > 0,
            tf.where(tf.math.is_finite(largest),
                     tf.where(tf.abs(predicted) > band, -tf.round(predicted), 0.0), -jump),
            0.0,
        )
        limit = _MAX_EXPONENT.get(dtype, 120.0)
        proposal = tf.clip_by_value(exponent + shift, -limit, limit)
        _CHAIN.set_carry(carry + (proposal - exponent))
        return proposal

    def _scaled_backward(self, x, exponent):
        @tf.custom_gradient
        def identity(x):
            def grad(dy):
                factor = _power_of_two(exponent)
                dx = tf.cast(tf.cast(dy, tf.float32) * factor, dy.dtype)
                proposal = self._propose(dx, exponent)
                self.pending.assign(proposal)
                if self.auto_commit:
                    self.exponent.assign(proposal)
                return dx

            return tf.identity(x), grad

        _CHAIN.reset()  # a forward pass starts a new chain for its backward pass
        return identity(x)

    def commit(self) -> None:
        """Use the proposed exponent from the next step on."""
        self.exponent.assign(tf.convert_to_tensor(self.pending))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "auto_commit": self.auto_commit}


class ScalePoints(tf.Module):
    """The scale points of a model and, per variable, which points its gradient passes.

    ``downstream[i]`` lists the indices of the points whose factor multiplies
    the gradient of ``variables[i]``; :meth:`log2_factors` gives, per block of
    a partition, the log2 of its total factor (the same for all its variables).
    """

    def __init__(self, layers: Sequence[BackwardScale], downstream: dict):
        super().__init__(name="backward_scaling")
        self.layers = list(layers)
        self.exponents = [layer.exponent for layer in self.layers]
        self.pending = [layer.pending for layer in self.layers]
        self._downstream = dict(downstream)  # id(variable) -> tuple of point indices

    def set_auto_commit(self, value: bool) -> None:
        for layer in self.layers:
            layer.auto_commit = value

    def commit(self) -> None:
        for layer in self.layers:
            layer.commit()

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
        """Per block: the log2 of the factor its gradient carries (this step's exponents)."""
        if not self.layers:
            return tf.zeros([matrix.shape[0]], tf.float32)
        exponents = tf.stack([tf.convert_to_tensor(e) for e in self.exponents])
        return tf.linalg.matvec(tf.constant(matrix), exponents)


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
            point = BackwardScale(auto_commit=False, name=f"backward_scale_{len(points) + 1}")
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
            point = BackwardScale(auto_commit=False, name=f"backward_scale_{len(points) + 1}")
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

