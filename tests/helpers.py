"""Helpers shared by the test modules (one place; test modules never import each other).

Sections: distributed TrainStep runs on a small regression problem; the
keras seed's classification data and MLP for the wrapper tests; tiny
experiment configs (mnist_mlp, deep_mlp on digits) and the binary's command
line for the training-program tests.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf

import tf_bng
from tf_bng.data import registry
from tf_bng.data.source import array_source
from tf_bng.data.spec import DatasetSpec
from tf_bng_configs import deep_mlp, mnist_mlp

# --- distributed TrainStep runs -------------------------------------------------------------

GLOBAL_BATCH = 8
STEPS = 5
CLIP_THRESHOLD = 0.05  # well below the block norms of this problem: clipping is active


def make_model() -> keras.Model:
    """A small Conv + Dense regressor with l2-regularized kernels (no BN: see module doc)."""
    reg = keras.regularizers.L2(1e-2)
    return keras.Sequential(
        [
            keras.Input((6, 6, 1)),
            keras.layers.Conv2D(2, 3, activation="tanh", kernel_regularizer=reg, name="conv"),
            keras.layers.Flatten(),
            keras.layers.Dense(4, activation="tanh", kernel_regularizer=reg, name="hidden"),
            keras.layers.Dense(1, name="out"),
        ],
        name="net",
    )


def initial_weights() -> list[np.ndarray]:
    keras.utils.set_random_seed(1)
    return make_model().get_weights()


def make_data(num_examples: int = GLOBAL_BATCH * STEPS):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(num_examples, 6, 6, 1)).astype(np.float32)
    y = (x.reshape(num_examples, -1).sum(axis=1, keepdims=True) / 6.0).astype(np.float32)
    return x, y


@dataclasses.dataclass
class Run:
    """What one training run produced."""

    weights: list[np.ndarray]
    losses: list[float]
    norms: list[np.ndarray]
    model: keras.Model
    step: tf_bng.TrainStep


def build_model(strategy, weights, make_optimizer, model_fn=make_model):
    """A model (with ``weights``) and its built optimizer, created under ``strategy``."""
    with strategy.scope():
        model = model_fn()
        model.set_weights(weights)
        optimizer = make_optimizer()
        optimizer.build(model.trainable_variables)
    return model, optimizer


def build_step(
    strategy,
    weights,
    make_optimizer,
    transform,
    *,
    model_fn=make_model,
    loss="mse",
    global_batch_size=GLOBAL_BATCH,
    **step_options,
):
    model, optimizer = build_model(strategy, weights, make_optimizer, model_fn)
    return tf_bng.TrainStep(
        model=model,
        loss=loss,
        optimizer=optimizer,
        transform=transform,
        global_batch_size=global_batch_size,
        strategy=strategy,
        **step_options,
    )


def distributed_batches(strategy, data, global_batch_size=GLOBAL_BATCH):
    """The global batches of ``data``, split across the replicas by tf.distribute."""
    dataset = tf.data.Dataset.from_tensor_slices(data).batch(global_batch_size)
    return strategy.experimental_distribute_dataset(dataset)


def train(strategy, weights, make_optimizer, transform, data, **step_kwargs) -> Run:
    """One TrainStep.step per global batch of ``data``."""
    step = build_step(strategy, weights, make_optimizer, transform, **step_kwargs)
    losses, norms = [], []
    batches = distributed_batches(strategy, data, step.global_batch_size)
    for batch in batches:
        output = step.step(batch)
        losses.append(float(output.loss))
        norms.append(output.block_norms.numpy())
    return Run(step.model.get_weights(), losses, norms, step.model, step)


def textbook_train(
    strategy,
    weights,
    make_optimizer,
    data,
    *,
    model_fn=make_model,
    loss_fn=keras.losses.mean_squared_error,
    global_batch_size=GLOBAL_BATCH,
):
    """The tf.distribute tutorial's custom loop: per-replica gradients straight into apply().

    Returns the final weights. This is what TrainStep replaces: Keras clips each
    replica's gradient (clipnorm/global_clipnorm) before it sums them.
    """
    model, optimizer = build_model(strategy, weights, make_optimizer, model_fn)

    def replica_fn(x, y):
        with tf.GradientTape() as tape:
            loss = tf.nn.compute_average_loss(
                loss_fn(y, model(x)), global_batch_size=global_batch_size
            )
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)

    step = tf.function(lambda batch: strategy.run(replica_fn, args=batch))
    for batch in distributed_batches(strategy, data, global_batch_size):
        step(batch)
    return model.get_weights()


def max_abs_diff(a, b) -> float:
    """Largest |a - b| over two lists of arrays, or two dicts of arrays with the same keys."""
    if isinstance(a, dict):
        assert sorted(a) == sorted(b)
        a, b = [a[k] for k in sorted(a)], [b[k] for k in sorted(a)]
    assert len(a) == len(b)
    return max(
        float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y)))) for x, y in zip(a, b)
    )


def replica_inputs(strategy, data) -> list[np.ndarray]:
    """The x that each replica receives from the first distributed batch of ``data``."""
    batch = next(iter(distributed_batches(strategy, data)))
    return [t.numpy() for t in strategy.experimental_local_results(batch[0])]


def replica_copies_agree(model: keras.Model, strategy) -> float:
    """Largest difference between the replicas' copies of any mirrored variable."""
    worst = 0.0
    for v in model.trainable_variables:
        copies = [c.numpy() for c in strategy.experimental_local_results(v.value)]
        worst = max([worst] + [float(np.max(np.abs(c - copies[0]))) for c in copies])
    return worst


TRANSFORMS = {
    "none": tf_bng.TransformConfig(transform="none"),
    "ng": tf_bng.TransformConfig(transform="ng"),
    "ng_adap": tf_bng.TransformConfig(transform="ng_adap", alpha=0.02),
    "clip": tf_bng.TransformConfig(transform="clip", threshold=CLIP_THRESHOLD),
    "global_clip": tf_bng.TransformConfig(transform="global_clip", threshold=CLIP_THRESHOLD),
}
OPTIMIZERS = {
    "sgd_momentum": lambda: keras.optimizers.SGD(learning_rate=0.1, momentum=0.9),
    "adam": lambda: keras.optimizers.Adam(learning_rate=1e-2),
}


# --- the keras seed's data and MLP (wrapper tests) ------------------------------------------


def seed_classification_data(n: int = 1000, seed: int = 1337):
    rng = np.random.RandomState(seed)
    y = rng.randint(0, 2, size=n).astype("int32")
    x = rng.normal(loc=y[:, None], scale=0.7, size=(n, 10)).astype("float32")
    return x, y


def seed_mlp(seed: int = 0, hidden: int = 10) -> keras.Model:
    """The seed's Dense(10)-ReLU-Dense(2)-softmax classifier."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((10,)),
            keras.layers.Dense(hidden),
            keras.layers.Activation("relu"),
            keras.layers.Dense(2),
            keras.layers.Activation("softmax", dtype="float32"),
        ]
    )


def loss_and_accuracy(model: keras.Model, x, y) -> tuple[float, float]:
    """Training loss and accuracy of ``model`` on ``(x, y)``, computed eagerly (no extra trace)."""
    probs = np.asarray(model(x, training=False), np.float64)
    loss = -np.mean(np.log(probs[np.arange(len(y)), y] + 1e-12))
    return float(loss), float(np.mean(np.argmax(probs, axis=1) == y))


def weights_of(model: keras.Model) -> list[np.ndarray]:
    return [np.array(w) for w in model.weights]


# --- tiny experiment configs and the binary ------------------------------------------------

LIMIT = 170  # examples per split: 8 full training batches of 20; eval ends with a partial batch
BATCH = 20


TINY_MNIST_ARG = "depth=2,optimizer=adam,transform=ng"
TINY_MNIST_SETTINGS = {
    "data.limit": LIMIT,
    "data.batch_size": BATCH,
    "model.width": 16,
    "train.steps": 6,
    "train.steps_per_loop": 3,
    "train.log_every": 3,
    "train.eval_every": 6,
    "train.checkpoint_every": 6,
}


def tiny_mnist_config(arg: str = TINY_MNIST_ARG, **overrides):
    """mnist_mlp shrunk to seconds: 2 hidden layers of 16 units, 170 digits, 6 steps."""
    config = mnist_mlp.get_config(arg)
    settings = dict(TINY_MNIST_SETTINGS, **overrides)
    config.update_from_flattened_dict(settings)
    return config


def checkpoint_values(workdir: str) -> dict:
    """Every saved tensor (model, optimizer, step, RNG states) of the latest checkpoint, by key."""
    reader = tf.train.load_checkpoint(os.path.join(workdir, "checkpoints"))
    return {
        key: reader.get_tensor(key)
        for key in reader.get_variable_to_shape_map()
        if key.endswith("VARIABLE_VALUE") and not key.startswith("save_counter")
    }


def model_values(model: keras.Model) -> dict:
    return {v.path: np.asarray(v.numpy()) for v in model.variables}


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_DIGITS_ARG = "depth=2,optimizer=adam,transform=ng,dataset=digits"
TINY_DIGITS_SETTINGS = {
    "data.limit": 200,
    "data.batch_size": 20,
    "model.width": 16,
    "train.steps": 6,
    "train.steps_per_loop": 2,
    "train.log_every": 2,
    "train.eval_every": 6,
    "train.checkpoint_every": 2,
}


def tiny_config(**overrides):
    """deep_mlp shrunk to seconds: 2 layers of 16 units with BatchNorm and dropout, digits."""
    config = deep_mlp.get_config(TINY_DIGITS_ARG)
    config.update_from_flattened_dict(dict(TINY_DIGITS_SETTINGS, **overrides))
    return config


def random_digits(count: int, *, features: int = 64, seed: int = 0):
    """Finite inputs in [0, 1) and labels in [0, 10): a well-formed stand-in for digits."""
    rng = np.random.default_rng(seed)
    return rng.random((count, features), np.float32), rng.integers(0, 10, count).astype(np.int32)


def install_digits(monkeypatch, train, test, *, input_shape=(64,), num_classes: int = 10) -> None:
    """Serve ``train`` / ``test`` ``(x, y)`` arrays as the ``digits`` dataset for this test."""

    def spec(config) -> DatasetSpec:
        return DatasetSpec(
            name="digits",
            task="classification",
            input_shape=input_shape,
            num_classes=num_classes,
            train_examples=len(train[0]),
            eval_examples=len(test[0]),
        )

    def arrays(config, split):
        return train if split == "train" else test

    source = array_source(spec=spec, arrays=arrays)
    monkeypatch.setitem(registry._SOURCES, "digits", source)


def binary_command(
    workdir: str, settings: dict, arg: str = TINY_DIGITS_ARG, config_file: str = "deep_mlp"
) -> list[str]:
    flags = [f"--config={REPO}/configs/{config_file}.py:{arg}", f"--workdir={workdir}"]
    flags += [f"--config.{key}={value}" for key, value in settings.items()]
    return [sys.executable, "-m", "trainers.train", *flags]


def binary_env(home: str | None = None, tmp: str | None = None) -> dict:
    """The test's environment minus anything that would steer the run's caches elsewhere."""
    env = {k: v for k, v in os.environ.items() if k not in ("MPLCONFIGDIR", "KERAS_HOME")}
    env.update(PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", NO_GCE_CHECK="true")
    if home is not None:
        env["HOME"] = home
    if tmp is not None:
        env.update(TMPDIR=tmp, TEMP=tmp, TMP=tmp)
    return env


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (for a TF_CONFIG cluster)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def start_worker(
    index: int, cluster: dict, workdir: str, settings: dict = TINY_MNIST_SETTINGS, *flags: str
) -> subprocess.Popen:
    """Worker ``index`` of ``cluster`` running the binary on tiny MNIST; its stderr is piped."""
    argv = [
        f"--config=configs/mnist_mlp.py:{TINY_MNIST_ARG}",
        f"--workdir={workdir}",
        "--config.runtime.strategy=multi_worker",
        "--config.runtime.collective_timeout=60",
        *flags,
    ]
    argv += [f"--config.{key}={value}" for key, value in settings.items()]
    env = dict(
        os.environ,
        TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        TF_CPP_MIN_LOG_LEVEL="2",
        NO_GCE_CHECK="true",
        no_proxy="127.0.0.1,localhost",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "trainers.train", *argv],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@contextlib.contextmanager
def preserved_environ():
    """Undo an in-process binary run's changes: it points caches and temp files at its workdir."""
    saved, saved_tempdir = dict(os.environ), tempfile.tempdir
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        tempfile.tempdir = saved_tempdir
