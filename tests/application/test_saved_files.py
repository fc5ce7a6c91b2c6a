"""Files saved by tf_bng 0.1.0 load and train on with exactly the state they were saved with.

The one compatibility promise: a ``.keras`` file of a model compiled with a tf_bng wrapper
optimizer, and a run's checkpoint directory as the Controller writes it, both written by the
release's code (``tests/data/make_saved_fixtures.py`` wrote ``tests/data/saved_0.1.0``; a later
release adds its own directory next to it and keeps this one).
"""

import importlib.util
import os
import shutil

import keras
import numpy as np
import tensorflow as tf

import tf_bng  # registers the wrapper classes for load_model
from tf_bng_trainers.experiment import Experiment

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data")
SAVED = os.path.join(DATA, "saved_0.1.0")


def _load_fixture_script():
    """The script that wrote the files: its models, data and config, defined once."""
    path = os.path.join(DATA, "make_saved_fixtures.py")
    spec = importlib.util.spec_from_file_location("make_saved_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fixtures = _load_fixture_script()


def _saved_keras():
    saved = np.load(os.path.join(SAVED, fixtures.KERAS_STATE))
    model = keras.saving.load_model(os.path.join(SAVED, fixtures.KERAS_FILE))
    return saved, model


def test_the_keras_file_restores_the_wrapper_and_every_optimizer_variable():
    saved, model = _saved_keras()
    optimizer = model.optimizer
    assert isinstance(optimizer, tf_bng.NormalizedOptimizer)
    assert isinstance(optimizer.inner_optimizer, keras.optimizers.SGD)
    assert optimizer.inner_optimizer.momentum == 0.9
    state = fixtures.state_of(model)
    assert sorted(state) == sorted(k for k in saved.files if k not in ("x", "y", "names"))
    for (key, value), name in zip(state.items(), saved["names"]):
        np.testing.assert_array_equal(value, saved[key], err_msg=f"{key} ({name})")
    assert int(optimizer.iterations.numpy()) == fixtures.KERAS_STEPS
    paths = [v.path for v in optimizer.variables]
    momentum = [v.numpy() for v in optimizer.variables if v.path.endswith("_momentum")]
    assert len(momentum) == 4 and all(np.any(m != 0) for m in momentum), paths  # not fresh


def test_the_keras_model_trains_on_as_the_model_it_was_saved_from():
    saved, loaded = _saved_keras()
    reference = fixtures.keras_model()
    reference.compile(optimizer=fixtures.keras_optimizer(), loss="mse")
    reference.optimizer.build(reference.trainable_variables)
    for i, v in enumerate(reference.weights):
        v.assign(saved[f"weight/{i:03d}"])
    for i, v in enumerate(reference.optimizer.variables):
        v.assign(saved[f"optimizer/{i:03d}"])
    before = [w.numpy() for w in loaded.weights]
    for model in (loaded, reference):
        model.fit(
            saved["x"],
            saved["y"],
            batch_size=fixtures.KERAS_BATCH,
            epochs=1,
            shuffle=False,
            verbose=0,
        )
    assert int(loaded.optimizer.iterations.numpy()) == 2 * fixtures.KERAS_STEPS
    for got, want, start in zip(loaded.weights, reference.weights, before):
        assert np.any(got.numpy() != start), got.path
        np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=got.path)


def _tensors(prefix: str) -> dict:
    reader = tf.train.load_checkpoint(prefix)
    return {
        key: reader.get_tensor(key)
        for key in reader.get_variable_to_shape_map()
        if key.endswith("VARIABLE_VALUE") and not key.startswith("save_counter")
    }


def test_the_checkpoint_restores_every_tensor_and_the_run_trains_on(tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(
        os.path.join(SAVED, fixtures.CHECKPOINT_RUN, "checkpoints"), workdir / "checkpoints"
    )
    steps = fixtures.CHECKPOINT_STEPS + 2
    experiment = Experiment(fixtures.checkpoint_config(steps), str(workdir))

    restored = experiment.checkpointer.restore_latest()
    assert os.path.basename(restored) == f"ckpt-{fixtures.CHECKPOINT_STEPS}"
    # The restored run, written again, is the saved file tensor for tensor: model, Adam slots,
    # BatchNorm statistics, dropout RNG states, step and bad-step counters.
    again = str(tmp_path / "again" / "ckpt")
    experiment.checkpointer.checkpoint.write(again)
    saved, rewritten = _tensors(restored), _tensors(again)
    assert sorted(rewritten) == sorted(saved)
    for key, value in saved.items():
        np.testing.assert_array_equal(rewritten[key], value, err_msg=key)
    slots = [k for k in saved if k.startswith("optimizer/") and saved[k].ndim == 2]
    assert slots and all(np.any(saved[k] != 0) for k in slots)
    assert int(experiment.optimizer.iterations.numpy()) == fixtures.CHECKPOINT_STEPS

    results = experiment.run()
    assert results["step"] == steps
    assert int(experiment.optimizer.iterations.numpy()) == steps  # 3 restored + 2 new
    assert np.isfinite(results["train_loss"])
