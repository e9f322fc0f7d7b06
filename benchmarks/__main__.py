"""python -m benchmarks: every case of benchmarks.compare_netket, one JSON line each."""

import sys

from benchmarks.compare_netket import main

sys.exit(main(sys.argv[1:]))
