"""configs/deep_mlp.py follows the keras seed's notebook: max norm per tensor, 0.01/0.001/0.0001."""

import pytest

from tf_bng.data import get_spec
from tf_bng_trainers.optimizers import build_optimizer, build_schedule
from tf_bng_trainers.shipped_configs import load_config


def _schedule_and_steps(config):
    steps_per_epoch = get_spec(config.data.name).steps_per_epoch(config.data.batch_size)
    total = round(config.train.epochs * steps_per_epoch)
    schedule = build_schedule(
        config.schedule,
        config.optimizer.learning_rate,
        steps_per_epoch=steps_per_epoch,
        total_steps=total,
    )
    return schedule, steps_per_epoch, total


@pytest.mark.parametrize("optimizer", ["nesterov", "adam"])
def test_seed_optimizers_with_max_norm_per_tensor(optimizer):
    config = load_config("deep_mlp", f"optimizer={optimizer}")
    assert (config.transform.name, config.transform.norm, config.transform.blocks) == (
        "ng",
        "max",
        "variable",
    )
    assert config.optimizer.learning_rate == 0.01
    assert config.data.batch_size == 128
    built = build_optimizer(config.optimizer, learning_rate=0.01)
    if optimizer == "nesterov":
        assert (type(built).__name__, built.momentum, built.nesterov) == ("SGD", 0.9, True)
    else:
        assert type(built).__name__ == "Adam"
        assert (built.beta_1, built.beta_2, built.epsilon) == (0.9, 0.999, 1e-7)  # Keras's defaults


def test_l2_comparison_and_plain_baseline():
    assert load_config("deep_mlp", "norm=l2").transform.norm == "l2"
    plain = load_config("deep_mlp", "optimizer=adam,transform=none")
    assert (plain.transform.name, plain.optimizer.learning_rate) == ("none", 0.01)


def test_three_phases_of_465_steps_divided_by_ten():
    schedule, steps_per_epoch, total = _schedule_and_steps(load_config("deep_mlp"))
    assert steps_per_epoch == 31 and total == 3 * 465  # mnist5k: 4,000 digits at batch 128
    # Keras's PiecewiseConstantDecay switches after the boundary step (iterations counts from 0).
    rates = {step: float(schedule(step)) for step in (0, 465, 466, 930, 931, total - 1)}
    assert rates[0] == rates[465] == pytest.approx(0.01)
    assert rates[466] == rates[930] == pytest.approx(0.001)
    assert rates[931] == rates[total - 1] == pytest.approx(0.0001)
