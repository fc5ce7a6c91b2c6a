"""Old import path of :mod:`tf_bng.step.loss_scaling`; kept so existing code keeps working."""

from tf_bng.step.loss_scaling import *  # noqa: F401,F403
from tf_bng.step.loss_scaling import __all__  # noqa: F401
