"""Large-batch LARS with gradient accumulation under MirroredStrategy, from the library alone.

    python examples/large_batch_lars.py [--replicas 2] [--accumulation 4] [--epochs 3]

An effective batch of 100 x accumulation examples on the 5,000 offline MNIST
digits: each replica computes its share of a 100-example micro-batch, the
gradients of ``accumulation`` micro-batches are summed locally and
all-reduced once, and LARS (SGD momentum + the ``ng_adap`` trust ratio with
alpha 0.001, capped at 10; biases and BatchNorm parameters excluded from the
trust ratio and from weight decay) steps on their mean, with a linear warmup
then cosine decay. On a CPU-only machine the replicas are logical CPUs.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf

import tf_bng
from tf_bng.training import input_pipeline, runtime

MICRO_BATCH = 100


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--accumulation", type=int, default=4)
    p.add_argument("--epochs", type=float, default=3.0)
    args = p.parse_args()

    runtime.configure_virtual_cpus(args.replicas)  # before TensorFlow creates its devices
    strategy = runtime.mirrored_strategy()
    spec = tf_bng.data.get_spec("mnist5k")
    updates_per_epoch = spec.steps_per_epoch(MICRO_BATCH) // args.accumulation
    total_updates = max(2, int(args.epochs * updates_per_epoch))

    with strategy.scope():
        model = tf_bng.models.mlp(
            depth=3,
            width=256,
            activation="relu",
            batch_norm=True,
            num_classes=spec.num_classes,
            input_shape=spec.input_shape,
        )
        schedule = tf_bng.make_schedule(
            "cosine", 2.0, total_steps=total_updates, warmup_steps=max(1, total_updates // 10)
        )
        optimizer = keras.optimizers.SGD(schedule, momentum=0.9, weight_decay=5e-4)
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    lars = tf_bng.TransformConfig(
        transform="ng_adap",
        alpha=0.001,
        max_scale=10.0,
        groups=[(tf_bng.selectors.one_dimensional, {"transform": "none"})],
    )
    step = tf_bng.TrainStep(
        model=model,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        optimizer=optimizer,
        transform=lars,
        global_batch_size=MICRO_BATCH,
        strategy=strategy,
        accumulation_steps=args.accumulation,
        metrics=[keras.metrics.SparseCategoricalAccuracy("accuracy")],
    )

    def dataset_fn(seed, context):
        return tf_bng.data.build_dataset(
            "mnist5k",
            batch_size=MICRO_BATCH,
            split="train",
            training=True,
            seed=seed,
            input_context=context,
        )

    iterator = input_pipeline.resumable_iterator(strategy, dataset_fn, seed=0)
    print(
        f"{strategy.num_replicas_in_sync} replicas, effective batch "
        f"{MICRO_BATCH * args.accumulation}, {total_updates} updates"
    )
    for start in range(0, total_updates, updates_per_epoch):
        n = min(updates_per_epoch, total_updates - start)
        step.loop(iterator, tf.constant(n))
        accuracy = float(step.metrics[0].result())
        step.metrics[0].reset_state()
        trust = step.last_scales.numpy()
        print(
            f"update {start + n}: train loss {step.running_loss.result():.4f}, accuracy "
            f"{accuracy:.3f}, trust ratios {trust.min():.2e}..{trust.max():.2e}"
        )
        step.running_loss.reset()


if __name__ == "__main__":
    main()
