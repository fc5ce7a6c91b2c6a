"""``runtime.jit_compile`` reaches what the binary runs (``TrainStep.loop``), or fails up front.

The binary trains through ``TrainStep.loop``; before issue 9 the key only
compiled ``TrainStep.step``, so ``--config.runtime.jit_compile=True`` changed
nothing. Under a multi-replica strategy XLA fails on CPU today: the step and
the config checks refuse it with one line.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny_mnist_config

import tf_bng
from tf_bng import TrainStep
from tf_bng.errors import ConfigError
from tf_bng_trainers.config_checks import validate_config
from tf_bng_trainers.experiment import Experiment as Trainer


def xla_calls(function: tf.types.experimental.ConcreteFunction) -> list[str]:
    """Names of the ops that must be compiled by XLA, in ``function``'s graph or any
    function it calls (the loop's step sits in the while loop's body)."""
    graph = function.graph.as_graph_def()
    nodes = [*graph.node, *(n for f in graph.library.function for n in f.node_def)]
    return [n.name for n in nodes if n.attr["_XlaMustCompile"].b]


def _step(jit: bool, strategy=None) -> TrainStep:
    keras.utils.set_random_seed(0)
    with (strategy or tf.distribute.get_strategy()).scope():
        model = keras.Sequential(
            [keras.Input((6,)), keras.layers.Dense(5, activation="sigmoid"), keras.layers.Dense(3)]
        )
        optimizer = keras.optimizers.Adam(1e-2)
    return TrainStep(
        model=model,
        optimizer=optimizer,
        transform="ng",
        global_batch_size=4,
        strategy=strategy,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit,
    )


def _batches():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6)).astype("float32")
    y = rng.integers(0, 3, 40)
    return iter(tf.data.Dataset.from_tensor_slices((x, y)).batch(4).repeat())


@pytest.mark.parametrize("jit", [False, True])
def test_loop_compiles_its_steps_with_xla_only_when_asked(jit):
    step = _step(jit)
    loop = step.loop.get_concrete_function(_batches(), tf.constant(3))
    assert bool(xla_calls(loop)) == jit


def test_jit_loop_trains_like_the_plain_loop():
    results = []
    for jit in (False, True):
        step = _step(jit)
        loss = step.loop(_batches(), tf.constant(10)).loss
        results.append((float(loss), [v.numpy() for v in step.model.trainable_variables]))
    (loss_plain, plain), (loss_jit, jit) = results
    assert loss_jit == pytest.approx(loss_plain, rel=1e-4)
    assert len(jit) == len(plain) == 4
    for a, b in zip(jit, plain):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_trainer_with_jit_compile_runs_an_xla_loop(tmp_path):
    config = tiny_mnist_config(**{"runtime.jit_compile": True})
    trainer = Trainer(config, str(tmp_path))
    results = trainer.run()
    assert results["step"] == 6 and np.isfinite(results["train_loss"])
    iterator = trainer._train_iterator(0)
    loop = trainer.train_step.loop.get_concrete_function(iterator, tf.constant(3, tf.int32))
    assert xla_calls(loop)


def _distributed_batches(strategy):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6)).astype("float32")
    y = rng.integers(0, 3, 40)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(4).repeat()
    return iter(strategy.experimental_distribute_dataset(dataset))


@pytest.mark.slow  # trains or spawns: 14 s (make test-fast skips it)
def test_under_two_replicas_the_transform_alone_is_compiled(mirrored_strategy):
    """XLA cannot compile the whole mirrored step on CPU; the transform compiles inside it."""
    plain = _step(False, mirrored_strategy)
    plain.loop(_distributed_batches(mirrored_strategy), tf.constant(5))
    jit = _step(True, mirrored_strategy)
    assert not jit.jit_compile and jit.transform_stage.compiled
    jit.loop(_distributed_batches(mirrored_strategy), tf.constant(5))
    for a, b in zip(jit.model.get_weights(), plain.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_custom_norm_keeps_the_transform_out_of_xla(mirrored_strategy):
    tf_bng.register_norm("l2_custom_jit", lambda g: tf.sqrt(tf.reduce_sum(g * g)))
    keras.utils.set_random_seed(0)
    with mirrored_strategy.scope():
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
        optimizer = keras.optimizers.SGD(0.1)
    step = TrainStep(
        model=model,
        optimizer=optimizer,
        global_batch_size=4,
        loss="mse",
        transform=tf_bng.TransformConfig(transform="ng", norm="l2_custom_jit"),
        strategy=mirrored_strategy,
        jit_compile=True,
    )
    assert not step.transform_stage.compiled


def test_jit_with_tpu_is_a_config_error():
    config = tiny_mnist_config(**{"runtime.jit_compile": True, "runtime.strategy": "tpu"})
    with pytest.raises(ConfigError, match="runtime.jit_compile=True"):
        validate_config(config)


def test_loop_traces_its_step_once():
    """One call site in the loop: a second one had traced (and inlined) the whole step twice."""
    step = _step(jit=False)
    traced = []
    plain_step = step._one_step
    step._one_step = lambda batch: traced.append(1) or plain_step(batch)
    assert int(step.loop(_batches(), tf.constant(3)).losses_counted) == 3
    assert len(traced) == 1
