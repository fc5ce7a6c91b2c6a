"""The models and synthetic batches every benchmark times, and step builders.

``deep_mlp``: the keras seed's MLP, 30 x (Dense(128) + BatchNorm + Dropout),
784 inputs, batch 128. ``resnet20``: He et al.'s CIFAR ResNet-20 on random
32x32x3 images, batch 128. ``many_blocks``: 100 x (Dense(16) + BatchNorm +
ReLU), batch 8, 201 layer blocks of almost no arithmetic: the launch-bound case
(issue 12), where a per-block cost of the transform shows as on an accelerator.
``smoke=True`` swaps in tiny stand-ins with the same kinds of layers, so a test
can run every script in seconds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from tf_bng import TrainStep, TransformConfig, models
from tf_bng.models.layers import logits

BATCH = 128
NUM_CLASSES = 10


@dataclasses.dataclass(frozen=True)
class Workload:
    """A built model and one global batch ``(x, y)`` of synthetic data for it."""

    name: str
    model: keras.Model
    batch: tuple[np.ndarray, np.ndarray]

    @property
    def batch_size(self) -> int:
        return len(self.batch[1])

    def tensors(self) -> tuple[tf.Tensor, tf.Tensor]:
        return tuple(tf.constant(t) for t in self.batch)

    def dataset(self) -> tf.data.Dataset:
        """The same batch forever: the input pipeline costs nothing in either candidate."""
        return tf.data.Dataset.from_tensors(self.tensors()).repeat()


def _synthetic(input_shape: tuple, batch: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random((batch, *input_shape), np.float32)
    return x, rng.integers(0, NUM_CLASSES, batch).astype(np.int32)


def _deep_mlp(smoke: bool) -> tuple[keras.Model, tuple]:
    depth, width, features, batch = (2, 8, 16, 8) if smoke else (30, 128, 784, BATCH)
    model = models.mlp(
        depth=depth,
        width=width,
        activation="relu",
        batch_norm=True,
        dropout=0.2,
        l2=1e-5,
        input_shape=(features,),
        num_classes=NUM_CLASSES,
    )
    return model, _synthetic((features,), batch)


def _resnet20(smoke: bool) -> tuple[keras.Model, tuple]:
    depth, side, batch = (8, 8, 8) if smoke else (20, 32, BATCH)
    model = models.cifar_resnet(depth=depth, num_classes=NUM_CLASSES, input_shape=(side, side, 3))
    return model, _synthetic((side, side, 3), batch)


def _many_blocks(smoke: bool) -> tuple[keras.Model, tuple]:
    """Dense -> BN -> ReLU repeated: two layer blocks per repeat, each a few hundred floats."""
    repeats, width, batch = (3, 8, 4) if smoke else (100, 16, 8)
    inputs = keras.Input(shape=(width,), name="features")
    x = inputs
    for i in range(1, repeats + 1):
        x = layers.Dense(width, name=f"dense{i}")(x)
        x = layers.BatchNormalization(name=f"dense{i}_bn")(x)
        x = layers.ReLU(name=f"dense{i}_relu")(x)
    model = keras.Model(inputs, logits(x, NUM_CLASSES), name="many_blocks")
    return model, _synthetic((width,), batch)


BUILDERS: dict[str, Callable[[bool], tuple[keras.Model, tuple]]] = {
    "deep_mlp": _deep_mlp,
    "resnet20": _resnet20,
    "many_blocks": _many_blocks,
}


def build(name: str, *, smoke: bool = False) -> Workload:
    if name not in BUILDERS:
        raise ValueError(f"Unknown model {name!r}. Valid choices: {', '.join(BUILDERS)}.")
    model, batch = BUILDERS[name](smoke)
    return Workload(name=name, model=model, batch=batch)


def loss() -> keras.losses.Loss:
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def sgd(**kwargs) -> keras.optimizers.Optimizer:
    """The base optimizer of every benchmark: SGD with momentum 0.9."""
    return keras.optimizers.SGD(0.01, momentum=0.9, **kwargs)


def fresh_model(workload: Workload) -> keras.Model:
    """A private copy of the weights, so candidates share no variables or optimizer slots."""
    clone = keras.models.clone_model(workload.model)
    clone.set_weights(workload.model.get_weights())
    return clone


def train_step(
    workload: Workload,
    *,
    transform: str = "none",
    blocks: str = "layer",
    optimizer: keras.optimizers.Optimizer | None = None,
    skip_nonfinite: bool = True,
    **settings,
) -> TrainStep:
    """A :class:`TrainStep` on a fresh copy of the model; norms are not reported.

    ``skip_nonfinite`` is TrainStep's own default (the guarded step); ``settings``
    go to the :class:`TransformConfig`.
    """
    return TrainStep(
        model=fresh_model(workload),
        loss=loss(),
        optimizer=optimizer or sgd(),
        transform=TransformConfig(transform=transform, blocks=blocks, **settings),
        global_batch_size=workload.batch_size,
        report_norms=False,
        skip_nonfinite=skip_nonfinite,
    )


def step_call(workload: Workload, **kwargs) -> Callable[[], float]:
    """One compiled train step on the workload's batch, blocking until done."""
    step = train_step(workload, **kwargs)
    batch = workload.tensors()
    return lambda: float(step.step(batch)[0])


def tape_step_call(
    workload: Workload, optimizer: keras.optimizers.Optimizer
) -> Callable[[], float]:
    """The textbook custom step: tape, mean loss + layer losses, ``optimizer.apply``."""
    model = fresh_model(workload)
    loss_fn = loss()
    optimizer.build(model.trainable_variables)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            value = loss_fn(y, model(x, training=True))
            if model.losses:
                value += tf.add_n(model.losses)
        grads = tape.gradient(value, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return value

    x, y = workload.tensors()
    return lambda: float(step(x, y))
