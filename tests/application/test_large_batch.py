"""Large-batch practice in the application: accumulation, LARS preset, warmup schedules, scales."""

import keras
import numpy as np
import pytest
from helpers import tiny_mnist_config

from tf_bng import schedules
from tf_bng.training.metrics_log import read_records
from tf_bng_configs import cifar_resnet
from tf_bng_trainers.config_checks import validate_config
from tf_bng_trainers.experiment import Experiment as Trainer


def test_accumulating_run_counts_updates_and_logs_scales(tmp_path):
    config = tiny_mnist_config(**{"train.accumulation_steps": 2})
    trainer = Trainer(config, str(tmp_path))
    results = trainer.run()
    assert results["step"] == 6 and int(trainer.optimizer.iterations.numpy()) == 6
    assert trainer.steps_per_epoch == 170 // 20 // 2  # an epoch is still one pass over the data
    train = read_records(str(tmp_path), "train")
    assert train[-1]["scale"] and all(v > 0 for v in train[-1]["scale"].values())
    norms, scales = train[-1]["grad_norm"], train[-1]["scale"]
    for name in norms:  # ng: scale = 1 / norm
        assert scales[name] * norms[name] == pytest.approx(1.0, rel=1e-4)


def test_lars_preset_owns_its_transform_and_schedule():
    config = cifar_resnet.get_config("optimizer=lars")
    settings = validate_config(config)
    assert settings.transform.transform == "ng_adap" and settings.transform.alpha == 0.001
    assert config.schedule.name == "cosine" and config.schedule.warmup_epochs == 5.0
    assert config.optimizer.momentum == 0.9
    with pytest.raises(ValueError, match="optimizer=lars brings its own transform"):
        cifar_resnet.get_config("optimizer=lars,transform=ng")


def test_warmup_then_cosine_and_polynomial():
    cosine = schedules.make_schedule("cosine", 1.0, total_steps=110, warmup_steps=10)
    assert float(cosine(0)) == pytest.approx(0.1)
    assert float(cosine(9)) == pytest.approx(1.0)
    assert float(cosine(10)) == pytest.approx(1.0)
    assert float(cosine(60)) == pytest.approx(0.5, abs=1e-6)
    assert float(cosine(110)) == pytest.approx(0.0, abs=1e-6)
    poly = schedules.make_schedule("polynomial", 2.0, total_steps=20, warmup_steps=10, power=2.0)
    assert float(poly(15)) == pytest.approx(2.0 * 0.5**2)
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(cosine))
    for step in (0, 5, 50, 100):
        assert float(restored(step)) == pytest.approx(float(cosine(step)))
    with pytest.raises(ValueError, match="valid: constant, piecewise, exponential, cosine"):
        schedules.make_schedule("linear", 1.0, total_steps=10)
    with pytest.raises(ValueError, match="warmup_steps must be in"):
        schedules.make_schedule("cosine", 1.0, total_steps=10, warmup_steps=10)


def test_lars_transform_keeps_one_dimensional_variables_out():
    from tf_bng.transforms import BlockTransform

    settings = validate_config(cifar_resnet.get_config("optimizer=lars,depth=8"))
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(2), keras.layers.BatchNormalization()]
    )
    part = BlockTransform(settings.transform).partition(model.trainable_variables)
    kept = {model.trainable_variables[i].path for ix in part.blocks for i in ix}
    assert kept == {model.trainable_variables[0].path}  # only the kernel
    assert len(part.excluded) == 3
    assert np.isfinite(settings.transform.alpha)
