"""nqs: variational Monte Carlo for neural quantum states, driven from the command line."""

import time as _time

__version__ = "0.1.0"
STARTED = _time.monotonic()  # when this process imported nqs: --max-time counts from here
