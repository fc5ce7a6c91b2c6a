"""Bad data fails at the first batch, before any training, with a message saying what is wrong."""

from __future__ import annotations

import os

import numpy as np
import pytest
from helpers import install_digits, random_digits, tiny_config

from tf_bng.errors import DataError
from tf_bng.training.metrics_log import read_records
from tf_bng_trainers.experiment import Experiment as Trainer


def _label_out_of_range(train, test):
    train[1][3] = 12
    return train, test


def _nan_input(train, test):
    train[0][5, 7] = np.nan
    return train, test


def _wrong_shape(train, test):
    return (train[0][:, :63], train[1]), test


def _negative_eval_label(train, test):
    test[1][2] = -1
    return train, test


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (
            _label_out_of_range,
            "train batch 0 of digits: label 12 (example 3) is outside [0, 10): digits has 10 "
            "classes.",
        ),
        (_nan_input, "train batch 0 of digits: 1 input values are NaN or Inf (first in example 5)"),
        (
            _wrong_shape,
            "train batch 0 of digits: inputs have shape (20, 63) (examples of shape (63,)) but the "
            "model takes examples of shape (64,).",
        ),
        (_negative_eval_label, "eval batch 0 of digits: label -1 (example 2) is outside [0, 10)"),
    ],
)
def test_bad_first_batch_fails_before_training(corrupt, message, tmp_path, monkeypatch):
    train, test = corrupt(random_digits(200), random_digits(40, seed=1))
    install_digits(monkeypatch, train, test)
    trainer = Trainer(tiny_config(), str(tmp_path))
    with pytest.raises(DataError) as error:
        trainer.run()
    assert str(error.value).startswith(message) and "\n" not in str(error.value)
    assert int(trainer.optimizer.iterations.numpy()) == 0
    assert read_records(str(tmp_path), "train") == []
    assert not os.path.exists(os.path.join(tmp_path, "checkpoints"))
