"""Write ``tests/data/saved_0.1.0``: the files a release saves, which later versions must load.

tf_bng keeps one compatibility promise: a ``.keras`` file and a training checkpoint written by a
release load and continue training. This script writes both with the code checked out;
``tests/application/test_saved_files.py`` loads them and trains on. Run it once per release,
into a new ``saved_<version>`` directory, and commit the files; never rerun it over an existing
directory to make a failing load pass (that would drop the promise silently)::

    .venv/bin/python tests/data/make_saved_fixtures.py --out tests/data/saved_0.1.0

What it writes (a few KB: tiny models):

* ``normalized_sgd.keras``: a two-layer model compiled with
  ``NormalizedOptimizer(SGD(0.1, momentum=0.9))`` after :data:`KERAS_STEPS` steps of ``fit``;
  ``normalized_sgd_state.npz``: its weights and optimizer variables at save time (in order,
  with their paths in ``names``) and the data it was fitted on (``x``, ``y``).
* ``checkpoint_run/``: a run of :func:`checkpoint_config` with :data:`CHECKPOINT_STEPS` steps,
  as ``tf-bng-train`` leaves it: ``checkpoints/`` (the Controller's Checkpointer: model, Adam
  slots, BatchNorm statistics, dropout RNG state, step and bad-step counters) and
  ``config.json``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

import keras
import numpy as np

import tf_bng

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "saved_0.1.0")
KERAS_FILE = "normalized_sgd.keras"
KERAS_STATE = "normalized_sgd_state.npz"
KERAS_STEPS = 3  # fit steps before the save: 12 examples, batch 4
KERAS_BATCH = 4
CHECKPOINT_RUN = "checkpoint_run"
CHECKPOINT_STEPS = 3
# deep_mlp (Dense -> BatchNorm -> Dropout) shrunk to a few KB, on the offline digits.
CHECKPOINT_ARG = "depth=2,optimizer=adam,transform=ng,dataset=digits"
CHECKPOINT_SETTINGS = {
    "data.limit": 60,
    "data.batch_size": 20,
    "model.width": 8,
    "train.steps_per_loop": 1,
    "train.log_every": 1,
    "train.eval_every": CHECKPOINT_STEPS,
    "train.checkpoint_every": CHECKPOINT_STEPS,
}


def keras_model() -> keras.Model:
    """The ``.keras`` fixture's model (the layer names are part of the saved file)."""
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3, activation="tanh", name="hidden"),
            keras.layers.Dense(2, name="out"),
        ],
        name="saved_mlp",  # not Keras's counter: the variable paths stay the same in any process
    )


def keras_optimizer() -> keras.optimizers.Optimizer:
    """A tf_bng wrapper around an optimizer with state of its own (momentum)."""
    return tf_bng.NormalizedOptimizer(keras.optimizers.SGD(0.1, momentum=0.9))


def keras_data() -> tuple[np.ndarray, np.ndarray]:
    """Fixed regression data: ``KERAS_STEPS`` batches of ``KERAS_BATCH``."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((KERAS_STEPS * KERAS_BATCH, 4)).astype(np.float32)
    y = rng.standard_normal((KERAS_STEPS * KERAS_BATCH, 2)).astype(np.float32)
    return x, y


def state_of(model: keras.Model) -> dict[str, np.ndarray]:
    """Weights and optimizer variables, in their order: ``weight/000``, ``optimizer/000``...

    By position, not by path: Keras names a loaded model's variables without the model's
    name (``hidden/kernel`` where the saving process had ``saved_mlp/hidden/kernel``).
    """
    state = {f"weight/{i:03d}": np.asarray(v.numpy()) for i, v in enumerate(model.weights)}
    for i, v in enumerate(model.optimizer.variables):
        state[f"optimizer/{i:03d}"] = np.asarray(v.numpy())
    return state


def write_keras(out: str) -> None:
    keras.utils.set_random_seed(0)
    model = keras_model()
    model.compile(optimizer=keras_optimizer(), loss="mse")
    x, y = keras_data()
    model.fit(x, y, batch_size=KERAS_BATCH, epochs=1, shuffle=False, verbose=0)
    model.save(os.path.join(out, KERAS_FILE))
    names = [v.path for v in model.weights] + [v.path for v in model.optimizer.variables]
    np.savez(os.path.join(out, KERAS_STATE), x=x, y=y, names=np.array(names), **state_of(model))


def checkpoint_config(steps: int):
    """The checkpoint fixture's config, trained to ``steps``."""
    from tf_bng_configs import deep_mlp

    config = deep_mlp.get_config(CHECKPOINT_ARG)
    config.update_from_flattened_dict(dict(CHECKPOINT_SETTINGS, **{"train.steps": steps}))
    return config


def write_checkpoint(out: str) -> None:
    from tf_bng_trainers.experiment import train_and_evaluate

    target = os.path.join(out, CHECKPOINT_RUN)
    with tempfile.TemporaryDirectory() as workdir:
        results = train_and_evaluate(checkpoint_config(CHECKPOINT_STEPS), workdir)
        if results["step"] != CHECKPOINT_STEPS:
            raise RuntimeError(f"The run stopped at step {results['step']}.")
        os.makedirs(target)
        shutil.copy(os.path.join(workdir, "config.json"), target)
        shutil.copytree(os.path.join(workdir, "checkpoints"), os.path.join(target, "checkpoints"))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="a directory that does not exist yet")
    args = parser.parse_args(argv)
    if os.path.exists(args.out):
        print(f"error: {args.out} exists; write a new release's files elsewhere.", file=sys.stderr)
        return 2
    os.makedirs(args.out)
    write_keras(args.out)
    write_checkpoint(args.out)
    for root, _, files in sorted(os.walk(args.out)):
        for name in sorted(files):
            path = os.path.join(root, name)
            print(f"{os.path.getsize(path):8d}  {os.path.relpath(path, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
