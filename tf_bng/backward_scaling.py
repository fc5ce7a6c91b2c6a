"""Per-layer backward scaling: keep the backprop signal inside the float range, exactly.

NG and NGadap use only the direction of each block's gradient, so the
backward signal may be multiplied by any positive number between layers
without changing the update. A :class:`BackwardScale` layer is the identity
in the forward pass; in the backward pass it multiplies the gradient flowing
through it by ``2**e`` (a power of two: exact), with ``e`` chosen from that
same gradient's magnitude: when the magnitude has left a band around the
target (2**±32 of 1 in float32; always in float16), ``e`` brings it back.
The magnitude is the largest over all replicas, so every replica uses the
same power and MirroredStrategy still equals one device. Points chained by
:func:`insert_scale_points` act one layer late in float32/float64/bfloat16
(each applies the power chosen from the output of the point above, so the
magnitude's reduction runs beside the next layer's backward pass rather
than before the multiply); float16 points and points placed by hand choose
from their own signal. The factor used
is kept in ``factor`` (the train step reads it to report true norms and to
bring the micro-batches of an accumulation window to one common factor).

:func:`insert_scale_points` puts one after every layer with weights of a
Sequential model (after its BatchNorm where one follows), and after the
layer calls of a functional model that all paths pass through and that
follow a layer with weights (between layers, at residual-block outputs;
never inside one branch of a block, where two paths would get different
factors).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

__all__ = [
    "BackwardScale",
    "ScalePoints",
    "insert_scale_points",
    "find_scale_points",
    "power_of_two",
    "true_norms",
]

# Per signal dtype: the power of two the signal's magnitude is brought to, and the
# band (in powers of two) around it inside which a point leaves the signal alone.
# float16 (normal range 2**-14..2**16) aims low and always rescales: a weight
# gradient sums the signal over the batch (x100 = 2**7 and more) and must not
# overflow either. The wide types have room: a signal within 2**±32 of 1 is left
# as it is (no multiply), which is what almost every point sees in a healthy
# net; a vanishing one is brought back as soon as it leaves the band.
_TARGET = {"float16": -6, "bfloat16": 0, "float32": 0, "float64": 0}
_BAND = {"float16": 0, "bfloat16": 32, "float32": 32, "float64": 32}
# Chained points may work one layer late (see BackwardScale) in the types whose
# range dwarfs the band. The lag costs headroom: a signal the point above left
# at the band's low edge crosses two layers before the next correction. Lagged
# points therefore correct a vanishing signal from 2**-16 on, not 2**-32: two
# layers may then attenuate it by 2**-133 together before float32 underflows
# (a same-batch point tolerates 2**-117 in one layer). Measured: depth-50
# sigmoid nets have single layers near 2**-57, and a lagged band of 2**-32 let
# the first layers' gradient reach exactly 0 at one logged step in 3 seeds.
# float16 has no room for a lag at all (a layer attenuating by 2**-10 takes a
# signal sent out at 2**-6 to 2**-16, the next one below the smallest
# subnormal) and stays same-batch.
_LAG_ONE_LAYER = (tf.bfloat16, tf.float32, tf.float64)
_LAGGED_LOW_EDGE = 16
# Signals with at least this many values per example take their magnitude from
# one fused sum of squares instead of max |signal| (abs, then max: two passes).
_LARGE_SIGNAL = 4096


@dataclasses.dataclass(frozen=True)
class _Format:
    """The bit layout of the float type a magnitude is read in."""

    dtype: tf.DType
    bits: tf.DType
    mantissa: int
    exponent_mask: int
    bias: int
    sqrt2_mantissa: int  # mantissa field of the smallest value >= sqrt(2) in this type

    def biased_exponent(self, value: tf.Tensor) -> tf.Tensor:
        """The IEEE exponent field of a scalar, sign ignored: floor(log2 |value|) + bias."""
        shifted = tf.bitwise.right_shift(tf.bitcast(value, self.bits), self.mantissa)
        return tf.cast(tf.bitwise.bitwise_and(shifted, self.exponent_mask), tf.int32)

    def rounded_exponent(self, value: tf.Tensor) -> tf.Tensor:
        """round(log2 |value|) + bias (half up at sqrt(2)), for a positive scalar.

        Adding ``2**mantissa - sqrt2_mantissa`` to the bits carries into the
        exponent field exactly when the mantissa is >= sqrt(2): one integer add.
        """
        carry = tf.constant((1 << self.mantissa) - self.sqrt2_mantissa, self.bits)
        bits = tf.bitcast(value, self.bits) + carry
        shifted = tf.bitwise.right_shift(bits, self.mantissa)
        return tf.cast(tf.bitwise.bitwise_and(shifted, self.exponent_mask), tf.int32)


_FLOAT32 = _Format(tf.float32, tf.int32, 23, 0xFF, 127, 0x3504F4)
_FLOAT64 = _Format(tf.float64, tf.int64, 52, 0x7FF, 1023, 0x6A09E667F3BCD)


def _format_of(dtype: tf.DType) -> _Format:
    """float64 magnitudes are read in float64; every other type fits float32 exactly."""
    return _FLOAT64 if dtype == tf.float64 else _FLOAT32


@functools.cache
def _exponent_table(dtype_name: str, lagged: bool = False) -> np.ndarray:
    """Per index ``i`` = round(log2 m) + bias of a magnitude m: the power of two a
    point applies to a signal of type ``dtype_name`` (float32 scalars).

    The rescaled magnitude lands in [2**(t - 1/2), 2**(t + 1/2)). 0 inside
    the band (from 2**-16 below the target for a ``lagged`` point) and for a
    zero magnitude; clamped to ±126 so ``2**e`` is a
    normal float32. The top index (a magnitude at the type's limit, or inf)
    gets the clamp; NaN lands on some index. A non-finite signal stays
    non-finite whatever the factor, and the step's guard skips it.
    """
    fmt = _format_of(tf.as_dtype(dtype_name))
    size = fmt.exponent_mask + 1
    exponents = _TARGET.get(dtype_name, 0) - (np.arange(size) - fmt.bias)
    exponents = np.clip(exponents, -126, 126)
    band = _BAND.get(dtype_name, 0)
    low_edge = min(band, _LAGGED_LOW_EDGE) if lagged else band  # exponents > 0 lift a signal
    exponents[(exponents >= -band) & (exponents <= low_edge)] = 0
    exponents[0] = 0
    return exponents.astype(np.float32)


def power_of_two(exponent: tf.Tensor) -> tf.Tensor:
    """``2**exponent`` as an exact float32 (the exponent rounded, clamped to [-126, 127]).

    Built from the bits, so no rounding of ``exp2`` can make a factor inexact.

    Args:
        exponent: The power, a float tensor of any shape.

    Returns:
        float32 ``2**round(exponent)``, element-wise.
    """
    e = tf.cast(tf.clip_by_value(tf.round(exponent), -126.0, 127.0), tf.int32)
    return tf.bitcast(tf.bitwise.left_shift(e + 127, 23), tf.float32)


def _max_magnitude(signal: tf.Tensor) -> tf.Tensor:
    """Index of max |signal| (exact; abs and max run in the signal's own type).

    An empty signal (a replica without examples in an uneven last batch)
    reduces to -inf; ``maximum(., 0)`` makes it index 0, like a zero signal,
    so it cannot win the max over replicas.
    """
    fmt = _format_of(signal.dtype)
    largest = tf.maximum(tf.reduce_max(tf.abs(signal)), tf.zeros([], signal.dtype))
    return fmt.rounded_exponent(tf.cast(largest, fmt.dtype))


def _norm_magnitude(signal: tf.Tensor) -> tf.Tensor:
    """Index of ~||signal||_2 from one sum of squares; of max |signal| where that fails.

    ``l2_loss`` (sum of squares / 2) is one fused pass. Where it is a normal
    number above 2**-100 (float32; 2**-900 in float64), every element that
    matters was counted and max <= sqrt(2 sum) <= sqrt(n) max: as good as
    the max for choosing a power of two. A vanishing, exploding or
    non-finite signal (rare) takes the exact max instead.
    """
    fmt = _format_of(signal.dtype)
    e_sum = fmt.biased_exponent(tf.nn.l2_loss(signal))
    lowest = fmt.bias - (100 if fmt is _FLOAT32 else 900)
    trusted = tf.logical_and(e_sum >= lowest, e_sum <= 2 * fmt.bias - 1)
    # round(log2 ||s||) = floor((log2 half_sum + 2) / 2), with floor(log2 half_sum) = e_sum - bias.
    from_sum = tf.bitwise.right_shift(e_sum + fmt.bias + 2, 1)
    return tf.cond(trusted, lambda: from_sum, lambda: _max_magnitude(signal))


def _is_large(signal: tf.Tensor) -> bool:
    """A float32/float64 signal with >= _LARGE_SIGNAL values per example (static shape)."""
    if signal.dtype not in (tf.float32, tf.float64) or signal.shape.rank is None:
        return False
    per_example = 1
    for dim in signal.shape[1:]:
        per_example *= dim or 1
    return per_example >= _LARGE_SIGNAL


def _magnitude(signal: tf.Tensor) -> tf.Tensor:
    """The signal's magnitude index (int32, see _exponent_table), the largest over all replicas."""
    index = _norm_magnitude(signal) if _is_large(signal) else _max_magnitude(signal)
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        # ReduceOp has no MAX: gather every replica's value, then take the largest.
        index = tf.reduce_max(context.all_gather(index[None], axis=0))
    return index


def _identity_scaling_gradient(x: tf.Tensor, backward) -> tf.Tensor:
    """``x`` unchanged; its gradient is ``backward(dy)`` instead of ``dy``."""

    @tf.custom_gradient
    def identity(value):
        return tf.identity(value), backward

    return identity(tf.convert_to_tensor(x))  # a raw tf.Variable has no tape id of its own


def factor_for(signal: tf.Tensor, *, lagged: bool = False) -> tf.Tensor:
    """The power of two (float32 scalar) a point multiplies ``signal`` by.

    It brings the signal's magnitude, the largest over all replicas, to the
    target where it lies outside the band (the narrower lagged band when the
    factor will act one layer later); 1 for a zero or empty signal.
    """
    # trace time only (cached table)
    factors = np.exp2(_exponent_table(signal.dtype.name, lagged))
    return tf.gather(tf.constant(factors), _magnitude(signal))


class _HandedDown(threading.local):
    """Per thread (MirroredStrategy traces each replica in its own), the factor
    a point chose for the point below it, waiting to be taken in this backward pass."""

    def __init__(self):
        self.factors: dict = {}

    def give(self, point, factor: tf.Tensor) -> None:
        self.factors[id(point)] = factor

    def take(self, point, signal: tf.Tensor):
        """The factor handed to ``point`` in the graph ``signal`` lives in, or None.

        Within one backward pass the point above always runs first (the
        signal passes through it), so what it handed down is fresh. Not
        guarded: a pass that reaches a point without its upper neighbour
        (a loss read between two points) after one that ran the upper point
        alone would take a factor from that earlier pass; it is still an
        exact power of two, so NG's update stays exact.
        """
        factor = self.factors.pop(id(point), None)
        if factor is None or getattr(factor, "graph", None) is not getattr(signal, "graph", None):
            return None  # nothing handed down, or left over from another trace
        return factor


_HANDED_DOWN = _HandedDown()


def _rescaled(signal: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """``signal * factor`` (a float32 power of two), exactly.

    A large signal skips the multiply (a full pass) when the factor is 1;
    for a small one the multiply costs less than the ``cond``.
    """
    if signal.dtype in (tf.float32, tf.float64):

        def multiply():
            return signal * tf.cast(factor, signal.dtype)
    else:  # float16 / bfloat16: the factor may not fit the signal's own type

        def multiply():
            return tf.cast(tf.cast(signal, tf.float32) * factor, signal.dtype)

    if not _is_large(signal):
        return multiply()
    return tf.cond(tf.equal(factor, 1.0), lambda: tf.identity(signal), multiply)


@keras.saving.register_keras_serializable(package="tf_bng")
class BackwardScale(keras.layers.Layer):
    """Identity forward; backward rescales the incoming gradient by a power of two.

    Place it between layers of a subclassed model (where every path passes)
    to use backward scaling with ``NormalizedOptimizer`` /
    ``AdaptiveNormalizedOptimizer`` in ``model.fit``, or let
    ``TrainStep(backward_scaling=True)`` insert the points itself.

    A point placed by hand chooses its factor from the signal it receives
    (same batch, same layer). Points that :func:`insert_scale_points` chains
    work one layer late, except in float16 (no room for the lag): each
    multiplies by the factor the point above chose for its own output, so
    the magnitude reduction of one point runs beside the next layer's
    backward pass instead of before the multiply. The topmost point of a
    chain, which has nothing handed down, chooses from its own signal.
    Every factor is still one exact power of two shared by all replicas, so
    NG's directions are unchanged; only how far a signal may drift from the
    target differs (one layer's gain).
    """

    def __init__(self, **kwargs):
        # The signal keeps its own dtype (float16 under mixed precision): the
        # target depends on it, and a cast here would move the overflow.
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.supports_masking = True
        # the next point of a chain, down the backward pass (a weak reference:
        # Keras would track a layer attribute as a sublayer)
        self._below = lambda: None

    def hand_down_to(self, point: BackwardScale) -> None:
        """Chain ``point`` (the next point below this one on every path) to this one.

        This point then chooses ``point``'s factor, one layer ahead (see the class docstring).

        Args:
            point: The next scale point down the backward pass.
        """
        self._below = weakref.ref(point)

    def build(self, input_shape):
        """Creates the non-trainable ``applied_factor`` weight (the last ``2**e`` applied)."""
        self.factor = self.add_weight(
            name="applied_factor",
            shape=(),
            initializer="ones",
            trainable=False,
            dtype="float32",
            aggregation="only_first_replica",
        )
        super().build(input_shape)

    def call(self, inputs):
        """Returns ``inputs`` unchanged; the gradient flowing back is multiplied by ``2**e``.

        Args:
            inputs: The activations at this point of the network.

        Returns:
            ``inputs``, with the backward rescaling attached.
        """
        return _identity_scaling_gradient(inputs, self._backward)

    def _backward(self, signal: tf.Tensor) -> tf.Tensor:
        """The incoming gradient times ``2**e``; the factor is kept for the train step."""
        handed_down = _HANDED_DOWN.take(self, signal)  # always taken, so none is left over
        lags = signal.dtype in _LAG_ONE_LAYER  # a float16 point is same-batch, whatever is above
        factor = handed_down if lags and handed_down is not None else factor_for(signal)
        self.factor.assign(factor)
        rescaled = _rescaled(signal, factor)
        below = self._below()
        if lags and below is not None:
            _HANDED_DOWN.give(below, factor_for(rescaled, lagged=True))
        return rescaled

    def compute_output_shape(self, input_shape):
        """Returns ``input_shape``: the layer is the identity going forward."""
        return input_shape


class ScalePoints(tf.Module):
    """The scale points of a model and, per variable, which points its gradient passes.

    ``downstream[i]`` lists the indices of the points whose factor multiplies
    the gradient of ``variables[i]``; :meth:`log2_factors` gives, per block of
    a partition, the log2 of its total factor (the same for all its variables).

    Args:
        layers: The model's BackwardScale layers, in the order the indices refer to.
        downstream: ``id(variable)`` -> tuple of the indices (into ``layers``) of the points
            whose factor multiplies that variable's gradient; a variable not in it sees none.
    """

    def __init__(self, layers: Sequence[BackwardScale], downstream: dict):
        super().__init__(name="backward_scaling")
        self.layers = list(layers)
        self.factors = [layer.factor for layer in self.layers]
        self._downstream = dict(downstream)  # id(variable) -> tuple of point indices

    def block_matrix(self, variables: Sequence[Any], blocks: Sequence[Sequence[int]]) -> np.ndarray:
        """[blocks, points] 0/1: which points multiply each block's gradient.

        Args:
            variables: The step's variables, in order.
            blocks: Per block, the indices into ``variables`` of its members.

        Returns:
            A float32 array of shape ``[len(blocks), len(layers)]``.

        Raises:
            ValueError: A block's variables see different points (a ``global`` block across
                layers): one common factor per block is what keeps its direction exact.
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
        """Per row of ``matrix``: the log2 of the factor the last backward pass applied.

        Args:
            matrix: A ``[rows, points]`` 0/1 array from :meth:`block_matrix` or
                :meth:`variable_matrix`.

        Returns:
            float32 ``[rows]``: the summed exponents of the points each row passes.
        """
        if not self.layers:
            return tf.zeros([matrix.shape[0]], tf.float32)
        factors = tf.stack([tf.convert_to_tensor(f) for f in self.factors])
        exponents = tf.round(tf.math.log(factors) * (1.0 / math.log(2.0)))  # exact powers of two
        return tf.linalg.matvec(tf.constant(matrix), exponents)

    def variable_matrix(self, variables: Sequence[Any]) -> np.ndarray:
        """[variables, points] 0/1: which points multiply each variable's gradient.

        Args:
            variables: The step's variables, in order.

        Returns:
            A float32 array of shape ``[len(variables), len(layers)]``.
        """
        return self.block_matrix(variables, [[i] for i in range(len(variables))])


def find_scale_points(model: keras.Model) -> list:
    """The BackwardScale layers a model holds (placed by the user), in tracking order.

    Args:
        model: Any Keras model; its sublayers are searched recursively.

    Returns:
        The :class:`BackwardScale` layers found (empty if there are none).
    """
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, BackwardScale)
    ]


def _variable_ids(layer) -> list:
    return [id(v) for v in layer.weights]


_NORMALIZATION = (
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.GroupNormalization,
)


def _is_normalization(layer) -> bool:
    """A normalization layer right after a layer with weights shares that layer's point.

    Placement: a point follows each layer with weights (a point with no
    weights below it since the last one adds nothing), but a Dense/Conv
    followed by its BatchNorm gets one point, after the BatchNorm: the norm
    layer changes the signal's scale by a bounded factor (gamma / sigma),
    and each point costs a few ops per step.
    """
    return isinstance(layer, _NORMALIZATION)


def _sequential_with_points(model: keras.Sequential):
    if not model.inputs:
        raise ValueError("backward_scaling needs a built Sequential model with an Input.")
    inputs = keras.Input(batch_shape=model.inputs[0].shape, dtype=model.inputs[0].dtype)
    x, points, calls = inputs, [], []
    layers = list(model.layers)
    last_call = {id(layer): i for i, layer in enumerate(layers)}
    weighted_since_point, shared_until = False, -1
    for index, layer in enumerate(layers):
        x = layer(x)
        calls.append(layer)
        weighted_since_point |= bool(layer.trainable_weights)
        shared_until = max(shared_until, last_call[id(layer)])  # a layer used again later
        joined = index + 1 < len(layers) and _is_normalization(layers[index + 1])
        if (
            index < len(layers) - 1
            and weighted_since_point
            and not joined
            and shared_until <= index
        ):
            weighted_since_point = False
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

    recorded = keras.models.clone_model(
        model, clone_function=lambda layer: layer, call_function=record
    )
    sink = len(calls)
    for t in keras.tree.flatten(recorded.outputs):
        # the loss reads every output: an output that another layer also
        # consumes is a path that jumps over the calls after it
        edges.append((producer[id(t)], sink))
    first_call = {}
    for index, layer in enumerate(calls):
        first_call.setdefault(id(layer), index)
        if first_call[id(layer)] < index:
            # a layer called twice sums two contributions: no point may separate them
            edges.append((first_call[id(layer)] - 1, index))
    last = len(calls) - 1
    cuts, weighted_since_cut = set(), False
    for i in range(last):
        weighted_since_cut |= bool(calls[i].trainable_weights)
        every_path = not any(u < i < v for u, v in edges) and any(u == i for u, _ in edges)
        joined = (i, i + 1) in edges and _is_normalization(calls[i + 1])
        if every_path and weighted_since_cut and not joined:
            cuts.add(i)
            weighted_since_cut = False
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

    Args:
        model: A built Sequential model (with an Input) or a functional model.

    Returns:
        ``(scaled_model, points)``.

    Raises:
        ValueError: ``model`` is a subclassed model without BackwardScale layers (its call
            graph cannot be cloned with points inserted), or a Sequential model without an
            Input.
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
    for below, above in zip(points, points[1:]):
        above[0].hand_down_to(below[0])
    downstream: dict[int, tuple] = {}
    for call_index, layer in enumerate(calls):
        after = tuple(p for p, (_, at) in enumerate(points) if at >= call_index)
        for vid in _variable_ids(layer):
            downstream.setdefault(vid, after)
    return scaled, ScalePoints([p for p, _ in points], downstream)


def times_power_of_two(values: tf.Tensor, log2_factor: tf.Tensor) -> tf.Tensor:
    """``values * 2**log2_factor`` (float32), exact wherever the result is a normal number.

    Three exact multiplies by powers of the same sign cover |log2_factor| <=
    378; beyond that each is clamped (2**±126), which still gives 0 or inf
    for every nonzero float32 and 0 for 0 (never 0 * inf).
    """
    values = tf.cast(values, tf.float32)
    first = tf.floor(log2_factor / 3.0)
    second = tf.floor((log2_factor - first) / 2.0)
    third = log2_factor - first - second
    return values * power_of_two(first) * power_of_two(second) * power_of_two(third)


def true_norms(scaled: tf.Tensor, log2_factor: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """``(norm, log10 norm)`` of gradients that carried ``2**log2_factor``.

    The norm is float32 and exact where representable (0 where it
    underflows, inf where it overflows); the log10 carries any magnitude.

    Args:
        scaled: The norms measured on the scaled gradients (any float dtype).
        log2_factor: The log2 of the factor each norm's gradient carried (from
            :meth:`ScalePoints.log2_factors`), same shape.

    Returns:
        ``(norm, log10_norm)``, both float32.
    """
    scaled = tf.cast(scaled, tf.float32)
    log10 = tf.math.log(scaled) / math.log(10.0) - log2_factor * math.log10(2.0)
    return times_power_of_two(scaled, -log2_factor), log10
