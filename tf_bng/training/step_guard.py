"""Old import path of :mod:`tf_bng.step.guard`; kept so existing code keeps working."""

from tf_bng.step.guard import *
from tf_bng.step.guard import __all__
