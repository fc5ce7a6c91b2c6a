"""Files written before the library/application split (commit bd3e4ea) still load (issue 10).

``tests/data/legacy_0.1`` holds a training checkpoint of
``configs/mnist_mlp.py:depth=2,optimizer=adam,transform=ng`` (3 steps) and a
``.keras`` file of a model compiled with ``AdaptiveNormalizedOptimizer`` under
the old default epsilon 1e-7, both written by that commit's code.
"""

import os
import shutil

import keras
import numpy as np
import tensorflow as tf

import tf_bng  # registers the wrapper classes
from tf_bng_configs import mnist_mlp
from tf_bng_trainers.experiment import Trainer

LEGACY = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "legacy_0.1")


def test_an_old_checkpoint_resumes(tmp_path):
    workdir = str(tmp_path / "run")
    os.makedirs(workdir)
    shutil.copytree(os.path.join(LEGACY, "checkpoints"), os.path.join(workdir, "checkpoints"))
    config = mnist_mlp.get_config("depth=2,optimizer=adam,transform=ng")
    config.update_from_flattened_dict(
        {"data.limit": 100, "data.batch_size": 20, "model.width": 8, "train.steps": 5}
    )
    trainer = Trainer(config, workdir)

    saved = tf.train.load_checkpoint(os.path.join(workdir, "checkpoints"))
    results = trainer.run()
    assert results["step"] == 5
    assert int(trainer.optimizer.iterations.numpy()) == 5  # 3 restored + 2 new
    key = next(k for k in saved.get_variable_to_shape_map() if k.startswith("step/"))
    assert int(saved.get_tensor(key)) == 3


def test_an_old_keras_file_keeps_its_epsilon_and_weights():
    model = keras.saving.load_model(os.path.join(LEGACY, "adaptive_eps1e-7.keras"))
    assert isinstance(model.optimizer, tf_bng.AdaptiveNormalizedOptimizer)
    assert model.optimizer.epsilon == 1e-7 and model.optimizer.alpha == 0.02
    weights = np.concatenate([w.ravel() for w in model.get_weights()])
    np.testing.assert_array_equal(weights, np.load(os.path.join(LEGACY, "adaptive_weights.npy")))
