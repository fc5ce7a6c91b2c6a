"""Old import path of :mod:`tf_bng.errors`; kept so existing code keeps working."""

from tf_bng.errors import *  # noqa: F401,F403
from tf_bng.errors import __all__  # noqa: F401
