"""Old import path of :mod:`tf_bng.step.guard`; kept so existing code keeps working."""

from tf_bng.step.guard import *  # noqa: F401,F403
from tf_bng.step.guard import __all__  # noqa: F401
