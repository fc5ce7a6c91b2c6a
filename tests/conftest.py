"""Test-session setup: two logical CPUs, so MirroredStrategy runs without a GPU.

Must run before TensorFlow initializes its devices, hence at import time.
Tests never touch the network: TFDS is pointed at an empty local directory.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TFDS_DATA_DIR", os.path.join(os.path.dirname(__file__), ".no_tfds_data"))
os.environ.setdefault("NO_GCE_CHECK", "true")

import tensorflow as tf

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

import pytest


@pytest.fixture
def mirrored_strategy():
    """MirroredStrategy over the two logical CPUs, with collective keys of its own.

    Plain MirroredStrategy objects in one process reuse TF's all-reduce keys and
    break each other ("Shape mismatch in the collective instance 100").
    """
    from tf_bng.training.runtime import mirrored_strategy as fresh_mirrored_strategy

    return fresh_mirrored_strategy(["/cpu:0", "/cpu:1"])
