"""Cost of the block transform inside one train step, against ``none``.

    python -m benchmarks.step_overhead [--rounds 15] [--blocks layer,variable,global]
      [--transforms ng] [--models deep_mlp,resnet20]

Same model, optimizer and batch; only ``transform`` differs. Each round times
``repeats`` steps of every candidate, alternating; the reported figure is the
median per-round ratio. Last line: ``overhead deep_mlp=<r> resnet20=<r>``
(ng, layer blocks, l2) — targets <= 1.10 and <= 1.03.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.timing import interleaved, median_ratio  # noqa: E402
from tf_bng import TrainStep, TransformConfig  # noqa: E402
from tf_bng import models  # noqa: E402

BATCH = 128


def _deep_mlp() -> tuple[keras.Model, tuple]:
    model = models.mlp(
        depth=30, width=128, activation="relu", batch_norm=True, dropout=0.2, l2=1e-5,
        input_shape=(784,), num_classes=10,
    )
    rng = np.random.default_rng(0)
    batch = (rng.random((BATCH, 784), np.float32), rng.integers(0, 10, BATCH).astype(np.int32))
    return model, batch


def _resnet20() -> tuple[keras.Model, tuple]:
    model = models.cifar_resnet(depth=20, num_classes=10, input_shape=(32, 32, 3))
    rng = np.random.default_rng(0)
    batch = (rng.random((BATCH, 32, 32, 3), np.float32), rng.integers(0, 10, BATCH).astype(np.int32))
    return model, batch


MODELS = {"deep_mlp": _deep_mlp, "resnet20": _resnet20}


def _step_fn(model, batch, transform: str, blocks: str):
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    # A private copy of the weights per candidate, so they don't share optimizer slots.
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    step = TrainStep(
        model=clone,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        optimizer=optimizer,
        transform=TransformConfig(transform=transform, blocks=blocks),
        global_batch_size=BATCH,
        report_norms=False,
    )
    batch = tuple(tf.constant(t) for t in batch)
    return lambda: step.step(batch)[0].numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", default="deep_mlp,resnet20")
    parser.add_argument("--transforms", default="ng")
    parser.add_argument("--blocks", default="layer")
    args = parser.parse_args()

    headline = {}
    print(f"{'model':<10} {'transform':<12} {'blocks':<9} {'ms/step':>9} {'none ms':>9} {'ratio':>7}")
    for model_name in args.models.split(","):
        model, batch = MODELS[model_name]()
        for transform in args.transforms.split(","):
            for blocks in args.blocks.split(","):
                candidates = {
                    "none": _step_fn(model, batch, "none", blocks),
                    transform: _step_fn(model, batch, transform, blocks),
                }
                times = interleaved(candidates, rounds=args.rounds, repeats=args.repeats)
                ratio = median_ratio(times[transform], times["none"])
                ms = 1e3 * float(np.median(times[transform]))
                base = 1e3 * float(np.median(times["none"]))
                print(f"{model_name:<10} {transform:<12} {blocks:<9} {ms:9.2f} {base:9.2f} {ratio:7.3f}")
                if transform == "ng" and blocks == "layer":
                    headline[model_name] = ratio
    print("overhead " + " ".join(f"{k}={v:.3f}" for k, v in headline.items()))


if __name__ == "__main__":
    main()
