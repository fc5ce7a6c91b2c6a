"""Shared machinery of the Keras 3 optimizer wrappers.

A wrapper is a ``keras.optimizers.Optimizer`` that holds another optimizer
(``inner_optimizer``), transforms the gradients block-wise with
:class:`tf_bng.transforms.BlockTransform` and hands them to the inner
optimizer. It is written like ``keras.optimizers.LossScaleOptimizer``:
``learning_rate`` and ``iterations`` are the inner optimizer's, so learning-rate
callbacks and schedules act on the optimizer that actually steps.

Under ``tf.distribute`` the transform must see the *global* gradient, but Keras
all-reduces inside ``inner_optimizer.apply``. ``apply`` therefore sums over the
replicas first, transforms, divides by the replica count and lets Keras re-sum
the identical copies (see :mod:`tf_bng.distributed`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import keras
import tensorflow as tf
from keras.saving import deserialize_keras_object, serialize_keras_object

from tf_bng import distributed
from tf_bng import norms as norms_lib
from tf_bng import selectors as selectors_lib
from tf_bng.gradient_transforms import all_finite
from tf_bng.step import guard as step_guard
from tf_bng.step.accumulation import GradientAccumulator, checked_accumulation_steps
from tf_bng.transforms import BlockTransform, TransformConfig
from tf_bng.wrappers.inner import InnerOptimizerProxy, check_keras_optimizer, reject_unowned_kwargs

__all__ = ["DEFAULT_BLOCKS", "BlockTransformOptimizer"]

DEFAULT_BLOCKS = "layer"
"""The paper's blocks: all variables of one layer (grouped by ``variable.path``)."""


def _check_inner(owner: str, optimizer: Any) -> None:
    check_keras_optimizer(owner, optimizer)
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        raise ValueError(
            f"Wrap the other way round: LossScaleOptimizer({owner}(...)). Loss scaling must "
            "be undone before the block transform (model.compile does this by itself under "
            "a mixed_float16 policy)."
        )
    if optimizer.loss_scale_factor is not None:
        raise ValueError(
            f"The inner optimizer has loss_scale_factor={optimizer.loss_scale_factor}: the "
            f"{owner} would transform still-scaled gradients. Use "
            f"keras.optimizers.LossScaleOptimizer({owner}(...)) instead."
        )
    if optimizer.gradient_accumulation_steps:
        raise ValueError(
            f"The inner optimizer accumulates gradients (gradient_accumulation_steps="
            f"{optimizer.gradient_accumulation_steps}); {owner} would transform each "
            "micro-batch gradient, not their sum. Use a larger batch instead."
        )


def _deserialized_groups(groups: Sequence) -> list:
    """Groups as given, or as saved by ``get_config`` (selector configs as dicts)."""
    out = []
    for group in groups:
        selector, overrides = group
        if isinstance(selector, dict):
            selector = selectors_lib.deserialize_selector(selector)
        out.append((selector, dict(overrides)))
    return out


def _single_tensor_norm(name: str) -> Callable[[tf.Tensor], tf.Tensor]:
    block_norm = norms_lib.get_norm(name)

    def norm(tensor: tf.Tensor) -> tf.Tensor:
        return block_norm([tensor])

    norm.__name__ = name
    return norm


def _zero_unless(finite, grad):
    """``grad`` when ``finite``, else zeros of its shape (dense or IndexedSlices)."""
    if grad is None:
        return None
    if isinstance(grad, tf.IndexedSlices):
        values = tf.where(finite, grad.values, tf.zeros_like(grad.values))
        return tf.IndexedSlices(values, grad.indices, grad.dense_shape)
    return tf.where(finite, grad, tf.zeros_like(grad))


class BlockTransformOptimizer(InnerOptimizerProxy):
    """Base class: an inner optimizer stepping on block-transformed gradients.

    Subclasses set ``transform_name`` (a :data:`tf_bng.TRANSFORMS` entry) and
    ``transform_options`` (their own constructor argument -> TransformConfig
    field); proxying, distribution and serialization live here.

    Args:
      optimizer: any Keras 3 optimizer instance; it owns the learning rate,
        momentum, weight decay, EMA...
      normalization: a norm name from ``tf_bng.available_norms()`` or one
        registered with :meth:`set_normalization_function`.
      blocks: ``"layer"`` (default, the paper: kernel + bias of a layer form one
        block, grouped by ``variable.path``), ``"variable"`` (the keras seed:
        one block per tensor), ``"global"`` or a callable ``variable -> key``
        (callables cannot be saved).
      exclude: regexes searched in ``variable.path``; matching variables keep
        their raw gradient.
      epsilon: added to the norm before dividing (default 0: every nonzero block is
        normalized however small its norm; > 0 caps the gain at 1/epsilon).
      max_scale: cap on the factor a block is multiplied by (None: no cap).
      groups: ``[(selector, overrides), ...]`` parameter groups (see
        :class:`tf_bng.TransformConfig`); saved when the selectors are
        ``tf_bng.selectors.path(...)`` or ready-made selectors.
      accumulation_steps: k > 1 sums the gradients of k batches and applies
        one update from their mean (transformed) every k-th batch: k batches
        of 32 equal one batch of 32*k. One device only (see ``apply``).
      skip_nonfinite: (default True) an update whose gradient holds NaN or Inf
        is skipped, as :class:`tf_bng.TrainStep` does: weights and the inner
        optimizer's state (moments, ``iterations``) stay as they were. Skips
        are counted in :attr:`bad_steps` (the
        :class:`~tf_bng.step.guard.BadStepCounter` ``TrainStep`` uses) and
        each prints one line to stderr.
        Under a multi-replica strategy the inner optimizer's all-reduce
        cannot sit inside a conditional, so there the non-finite gradient is
        replaced by zeros instead (weights stay finite; a stateful inner
        optimizer still advances its moments by one step). False: Keras's
        behaviour (the weights become NaN).
      name: the optimizer's name (None: Keras derives one from the class name).
      **kwargs: the subclass's own transform options (``transform_options``).

    Raises:
      ValueError: an argument that belongs to the inner optimizer (``learning_rate``,
        ``weight_decay``, ...) or an unknown one, a loss-scaled inner optimizer,
        ``accumulation_steps`` < 1, or a bad setting (as :class:`tf_bng.TransformConfig`).
      TypeError: ``optimizer`` is not a Keras 3 optimizer instance.
    """

    transform_name: ClassVar[str] = "none"
    transform_options: ClassVar[dict[str, str]] = {}

    def __init__(
        self,
        optimizer: keras.optimizers.Optimizer,
        normalization: str = "l2",
        *,
        blocks: Any = DEFAULT_BLOCKS,
        exclude: Sequence[str] = (),
        epsilon: float = 0.0,
        max_scale: float | None = None,
        groups: Sequence = (),
        accumulation_steps: int = 1,
        skip_nonfinite: bool = True,
        name: str | None = None,
        **kwargs,
    ):
        owner = type(self).__name__
        options = {
            field: kwargs.pop(arg) for arg, field in self.transform_options.items() if arg in kwargs
        }
        reject_unowned_kwargs(owner, kwargs)
        _check_inner(owner, optimizer)
        config = TransformConfig(
            transform=self.transform_name,
            norm=normalization,
            blocks=blocks,
            exclude=(exclude,) if isinstance(exclude, str) else tuple(exclude),
            epsilon=epsilon,
            max_scale=max_scale,
            groups=tuple(_deserialized_groups(groups)),
            **options,
        )
        accumulation_steps = checked_accumulation_steps(accumulation_steps)
        super().__init__(learning_rate=0.0, name=name)
        self.inner_optimizer = optimizer
        self.accumulation_steps = accumulation_steps
        self.skip_nonfinite = bool(skip_nonfinite)
        self._bad_steps = None
        self._block_transform = BlockTransform(config)

    # ---- the transform's settings --------------------------------------------
    @property
    def transform_config(self) -> TransformConfig:
        """The :class:`TransformConfig` this wrapper applies to every gradient."""
        return self._block_transform.config

    @property
    def normalization(self) -> str:
        """The name of the block norm (the seed's ``normalization`` argument)."""
        return self.transform_config.norm

    @property
    def blocks(self) -> Any:
        """The block mode or spec (``"variable"``, ``"layer"``, ``"global"``, ...)."""
        return self.transform_config.blocks

    @property
    def exclude(self) -> tuple[str, ...]:
        """Regexes on ``variable.path`` whose gradients pass unchanged."""
        return self.transform_config.exclude

    @property
    def epsilon(self) -> float:
        """The ``epsilon`` added to each block norm (0: every nonzero block is normalized)."""
        return self.transform_config.epsilon

    def partition(self, variables: Sequence[Any]):
        """How ``variables`` are grouped into blocks (names, index tuples, excluded).

        Args:
            variables: The variables the wrapper would step on, in order.

        Returns:
            A :class:`~tf_bng.blocks.Partition`.
        """
        return self._block_transform.partition(list(variables))

    # ---- the seed's norm registry API ------------------------------------------
    @classmethod
    def set_normalization_function(cls, name: str, fn: Callable[[tf.Tensor], tf.Tensor]) -> None:
        """Register a norm (one flat tensor -> scalar); same registry as ``tf_bng.register_norm``.

        Register custom norms before ``keras.saving.load_model`` of a model using them.

        Args:
            name: The name to pass as ``normalization``.
            fn: One flat tensor -> scalar tensor.

        Raises:
            ValueError: As :func:`tf_bng.register_norm` (an empty or built-in name).
            TypeError: ``fn`` is not callable.
        """
        norms_lib.register_norm(name, fn)

    @classmethod
    def get_normalization_functions(cls) -> dict[str, Callable[[tf.Tensor], tf.Tensor]]:
        """Every registered norm by name, as a function of one tensor."""
        return {name: _single_tensor_norm(name) for name in norms_lib.available_norms()}

    @property
    def variables(self):
        """The wrapper's variables, then the inner optimizer's, then ``bad_steps``'s.

        ``bad_steps`` last: a ``.keras`` file saved before it existed lists the
        others in this order.
        """
        counter = getattr(self, "_bad_steps", None)
        last = [counter.total, counter.consecutive] if counter is not None else []
        own = [v for v in self._variables if not any(v is c for c in last)]
        return own + self.inner_optimizer.variables + last

    @property
    def bad_steps(self):
        """The skipped updates, a :class:`tf_bng.step.guard.BadStepCounter` as ``TrainStep``'s.

        ``bad_steps.counts()`` is ``(total, in a row)``; None before ``build``
        and when ``skip_nonfinite`` is off.
        """
        return self._bad_steps

    def load_own_variables(self, store):
        """Loads the saved state; a ``.keras`` file of 0.1 (no ``bad_steps``) counts from 0."""
        variables = self.variables
        own = len(variables) - (0 if self._bad_steps is None else 2)
        if own != len(variables) and len(store.keys()) == own:
            for i, variable in enumerate(variables[:own]):
                variable.assign(store[str(i)])
            return
        super().load_own_variables(store)

    def build(self, variables):
        """Builds the inner optimizer and the wrapper for ``variables`` (only once)."""
        if self.built:  # load_model's compile_from_config builds, then fit may try again
            return
        self.inner_optimizer.build(variables)
        super().build(variables)
        if self.skip_nonfinite:
            self._bad_steps = step_guard.BadStepCounter(
                make_variable=lambda counter: self.add_variable(
                    shape=(),
                    dtype="int64",
                    initializer="zeros",
                    aggregation="only_first_replica",
                    name=f"bad_steps_{counter}",
                )
            )
        self._accumulator = None
        if self.accumulation_steps > 1:
            # The step's accumulator, made of Keras variables so that .keras files hold them.
            self._accumulator = GradientAccumulator(
                variables,
                self.accumulation_steps,
                make_variable=lambda name, shape, dtype, _: self.add_variable(
                    shape=shape, dtype=dtype, initializer="zeros", name=name
                ),
            )

    # ---- the update -------------------------------------------------------------
    def apply(self, grads, trainable_variables=None):
        if trainable_variables is None:
            if not self.built:
                raise ValueError(
                    "Pass trainable_variables on the first call, or call build(variables) first."
                )
            variables = list(self._trainable_variables)
        else:
            variables = list(trainable_variables)
        grads = list(grads)
        if not grads:
            return
        if not self.built:
            self.build(variables)
        if self.accumulation_steps > 1:
            self._accumulate(grads, variables)
            return
        self._transform_and_apply(grads, variables)

    def _transform_and_apply(self, grads: list, variables: list) -> None:
        # Variables overwritten with their "gradient" (float8 scales) are not
        # gradients: keep them out of the reduction and the transform.
        passthrough = {
            i for i, v in enumerate(variables) if self._overwrite_variable_with_gradient(v)
        }
        transformable = [None if i in passthrough else g for i, g in enumerate(grads)]
        transformable = distributed.sum_over_replicas(transformable)
        if self._bad_steps is None:
            self.inner_optimizer.apply(
                self._transformed(transformable, grads, passthrough, variables), variables
            )
            return
        # The summed gradient is the same on every replica: so is the decision.
        finite = all_finite(transformable)
        if distributed.in_multi_replica_context():
            # The inner apply all-reduces: it cannot sit in a cond. Zeros instead.
            transformable = [_zero_unless(finite, g) for g in transformable]
            self.inner_optimizer.apply(
                self._transformed(transformable, grads, passthrough, variables), variables
            )
        else:
            transformed = self._transformed(transformable, grads, passthrough, variables)
            step_guard.run_if(finite, lambda: self.inner_optimizer.apply(transformed, variables))
        self._bad_steps.record(finite)
        context = tf.distribute.get_replica_context()
        first = context is None or context.replica_id_in_sync_group == 0  # one line per worker
        step_guard.run_if(tf.logical_and(tf.logical_not(finite), first), self._report_skip)

    def _report_skip(self) -> None:
        tf.print(
            f"{type(self).__name__}: skipped an update with a non-finite gradient "
            "(NaN or Inf); bad_steps =",
            self._bad_steps.total,
            output_stream=sys.stderr,
        )

    def _transformed(self, transformable, grads, passthrough, variables) -> list:
        transformed, _ = self._block_transform(transformable, variables, with_norms=False)
        transformed = distributed.divide_for_keras_sum(transformed)
        for i in passthrough:
            transformed[i] = grads[i]
        return transformed

    def _accumulate(self, grads: list, variables: list) -> None:
        """Add this batch's gradients; every k-th call, apply their transformed mean.

        The inner optimizer's ``apply`` runs inside a ``cond`` (only every
        k-th batch). Under a multi-replica strategy that ``apply`` all-reduces
        through ``merge_call``, which a ``cond`` in replica context cannot
        hold; :class:`tf_bng.TrainStep` accumulates correctly there.
        """
        if distributed.in_multi_replica_context():
            raise ValueError(
                f"{type(self).__name__}(accumulation_steps={self.accumulation_steps}) works on one "
                "device only: under a multi-replica strategy the inner optimizer's all-reduce "
                "cannot run inside the conditional update. Use "
                "tf_bng.TrainStep(accumulation_steps=k), which accumulates under tf.distribute."
            )
        acc = self._accumulator
        acc.add(grads)
        count = acc.count.assign_add(1)
        like = [g if g is None else v for g, v in zip(grads, variables)]

        def update():
            self._transform_and_apply(acc.local_means(like), variables)
            acc.reset()
            return tf.constant(True)

        tf.cond(count % self.accumulation_steps == 0, update, lambda: tf.constant(False))

    # ---- serialization ------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        # Not super().get_config(): the base settings belong to the inner optimizer.
        cfg = self.transform_config
        if callable(cfg.blocks):
            raise ValueError(
                f"{type(self).__name__} with a callable `blocks` cannot be serialized; use "
                "'layer', 'variable' or 'global' to save the model."
            )
        return {
            "name": self.name,
            "optimizer": serialize_keras_object(self.inner_optimizer),
            "normalization": cfg.norm,
            "blocks": cfg.blocks,
            "exclude": list(cfg.exclude),
            "epsilon": cfg.epsilon,
            "max_scale": cfg.max_scale,
            "groups": [
                [selectors_lib.serialize_selector(selector), dict(overrides)]
                for selector, overrides in cfg.groups
            ],
            "accumulation_steps": self.accumulation_steps,
            "skip_nonfinite": self.skip_nonfinite,
            **{arg: getattr(cfg, field) for arg, field in self.transform_options.items()},
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects=None):
        config = dict(config)
        norm = config.get("normalization", "l2")
        if norm not in norms_lib.available_norms():
            raise ValueError(
                f"{cls.__name__} uses the norm {norm!r}, which is not registered in this "
                f"process. Call tf_bng.register_norm({norm!r}, fn) (or "
                f"{cls.__name__}.set_normalization_function({norm!r}, fn)) before "
                "keras.saving.load_model. Registered norms: "
                f"{', '.join(norms_lib.available_norms())}."
            )
        inner = deserialize_keras_object(config.pop("optimizer"), custom_objects=custom_objects)
        return cls(inner, **config)
