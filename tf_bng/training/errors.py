"""Old import path of :mod:`tf_bng.errors`; kept so existing code keeps working."""

from tf_bng.errors import *
from tf_bng.errors import __all__
