"""Export a trained model as a SavedModel with a ``serving_default`` signature.

The signature takes one batch of inputs (batch dimension free) and returns
``{"outputs": model(x, training=False)}`` in float32 (mixed-precision models
compute in float16/bfloat16): the logits for the classifiers. The input is
named ``inputs``; for the MNIST MLP configs it is ``[batch, 784]`` float32
pixels / 255. It serves through TensorFlow's C++ loader (``saved_model_cli
run``, TF Serving) as well as ``tf.saved_model.load(path).serve(x)``.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_bng.training.checkpointing import remove_scratch, write_path

__all__ = ["serving_spec", "export_saved_model"]


def serving_spec(element_spec) -> tf.TensorSpec:
    """The input spec of a batch ``(x, y[, w])`` with the batch dimension left free.

    Args:
        element_spec: A dataset's ``element_spec``: a tuple whose first entry is the
            inputs' spec, or the inputs' spec itself.

    Returns:
        A ``tf.TensorSpec`` named ``inputs``, shape ``[None, *example_shape]``.
    """
    x_spec = element_spec[0] if isinstance(element_spec, (tuple, list)) else element_spec
    return tf.TensorSpec([None, *x_spec.shape[1:]], x_spec.dtype, name="inputs")


def export_saved_model(
    model: keras.Model,
    path: str,
    input_spec: tf.TensorSpec,
    *,
    strategy: tf.distribute.Strategy | None = None,
) -> str:
    """Write ``model`` to ``path`` (the chief's copy; workers write scratch and delete it).

    Args:
        model: The trained model; served with ``training=False``, outputs cast to float32.
        path: The SavedModel directory.
        input_spec: The signature's input (see :func:`serving_spec`).
        strategy: The run's strategy: only its chief writes to ``path``; None for one
            process.

    Returns:
        ``path``.
    """
    # keras.export.ExportArchive tracks every variable of the model explicitly, so
    # TensorFlow's C++ loader (saved_model_cli, TF Serving) finds them; a tf.Module
    # holding the Keras 3 model saved functions whose variables the C++ loader
    # could not find ("Could not find variable logits/bias").
    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(x):
        outputs = model(x, training=False)
        return {"outputs": tf.cast(outputs, tf.float32)}

    # write_out also signs the first endpoint as "serving_default".
    archive.add_endpoint("serve", serve, input_signature=[input_spec])
    archive.write_out(write_path(path, strategy), verbose=False)
    remove_scratch(path, strategy)
    return path
