"""Old import path of :mod:`tf_bng.step.eval_step`; kept so existing code keeps working."""

from tf_bng.step.eval_step import *  # noqa: F401,F403
from tf_bng.step.eval_step import __all__  # noqa: F401
