"""The outer training loop and what it needs, config-free: Orbit's Controller split.

:class:`Controller` runs a built :class:`tf_bng.TrainStep` with
evaluation, checkpoints (:class:`Checkpointer`), metric writing
(:class:`MetricsLog`), signals and export; :mod:`.runtime` makes the
strategy and precision settings, :mod:`.input_pipeline` resumable
distributed input, :mod:`.data_checks` the first-batch checks. Nothing here
reads a config: the application (``trainers/``) builds these objects from
one.
"""

from tf_bng.training import data_checks, input_pipeline, runtime
from tf_bng.training.checkpointing import Checkpointer
from tf_bng.training.controller import Controller
from tf_bng.training.export import export_saved_model, serving_spec
from tf_bng.training.interruption import StopRequest
from tf_bng.training.metrics_log import MetricsLog, read_records

__all__ = [
    "Controller",
    "Checkpointer",
    "MetricsLog",
    "read_records",
    "StopRequest",
    "export_saved_model",
    "serving_spec",
    "data_checks",
    "input_pipeline",
    "runtime",
]
