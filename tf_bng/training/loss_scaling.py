"""Old import path of :mod:`tf_bng.step.loss_scaling`; kept so existing code keeps working."""

from tf_bng.step.loss_scaling import *
from tf_bng.step.loss_scaling import __all__
