"""Export a trained model as a SavedModel with a ``serving_default`` signature.

The signature takes one batch of inputs (batch dimension free) and returns
``{"outputs": model(x, training=False)}`` in float32 (mixed-precision models
compute in float16/bfloat16). ``tf.saved_model.load(path).signatures
["serving_default"]`` or ``.serve(x)`` reproduce the model's outputs.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_bng.training.checkpointing import remove_scratch, write_path

__all__ = ["serving_spec", "export_saved_model"]


def serving_spec(element_spec) -> tf.TensorSpec:
    """The input spec of a batch ``(x, y[, w])`` with the batch dimension left free."""
    x_spec = element_spec[0] if isinstance(element_spec, (tuple, list)) else element_spec
    return tf.TensorSpec([None, *x_spec.shape[1:]], x_spec.dtype, name="inputs")


def export_saved_model(
    model: keras.Model,
    path: str,
    input_spec: tf.TensorSpec,
    *,
    strategy: tf.distribute.Strategy | None = None,
) -> str:
    """Write ``model`` to ``path`` (the chief's copy; workers write scratch and delete it)."""
    module = tf.Module()
    module.model = model

    @tf.function(input_signature=[input_spec])
    def serve(x):
        outputs = model(x, training=False)
        return {"outputs": tf.cast(outputs, tf.float32)}

    module.serve = serve
    tf.saved_model.save(module, write_path(path, strategy), signatures={"serving_default": serve})
    remove_scratch(path, strategy)
    return path
