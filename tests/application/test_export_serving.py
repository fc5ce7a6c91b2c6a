"""The SavedModel export serves through TensorFlow's C++ loader (saved_model_cli, as TF Serving).

Issue 22: a ``tf.Module`` holding a Keras 3 model saved a SavedModel that only
Python's ``tf.saved_model.load`` could run; ``saved_model_cli run`` failed
with ``Could not find variable logits/bias``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tf_bng.models.mlp import mlp
from tf_bng.training.export import export_saved_model

SAVED_MODEL_CLI = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")


@pytest.mark.slow
def test_saved_model_cli_run_returns_the_models_logits(tmp_path):
    model = mlp(2, 10, (784,), width=16)
    path = str(tmp_path / "export")
    export_saved_model(model, path, tf.TensorSpec([None, 784], tf.float32, name="inputs"))
    # What the README documents: pixels / 255, flattened to 784 floats.
    pixels = np.random.RandomState(0).randint(0, 256, size=(3, 784))
    sample = (pixels / 255.0).astype(np.float32)
    np.save(tmp_path / "sample.npy", sample)
    out = tmp_path / "out"
    result = subprocess.run(
        [
            SAVED_MODEL_CLI,
            "run",
            "--dir",
            path,
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--inputs",
            f"inputs={tmp_path / 'sample.npy'}",
            "--outdir",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    served = np.load(out / "outputs.npy")
    expected = model(sample, training=False).numpy()
    assert served.shape == (3, 10)
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-6)


def test_python_loader_serves_both_endpoints(tmp_path):
    model = mlp(1, 10, (784,), width=8)
    path = str(tmp_path / "export")
    export_saved_model(model, path, tf.TensorSpec([None, 784], tf.float32, name="inputs"))
    loaded = tf.saved_model.load(path)
    x = np.random.RandomState(1).rand(2, 784).astype(np.float32)
    expected = model(x, training=False).numpy()
    np.testing.assert_allclose(loaded.serve(x)["outputs"].numpy(), expected, rtol=1e-6, atol=1e-6)
    signature = loaded.signatures["serving_default"]
    np.testing.assert_allclose(
        signature(inputs=x)["outputs"].numpy(), expected, rtol=1e-6, atol=1e-6
    )
