"""Old import path of :mod:`tf_bng.step.eval_step`; kept so existing code keeps working."""

from tf_bng.step.eval_step import *
from tf_bng.step.eval_step import __all__
