"""`python -m lab.bench`: every benchmark, one table (see lab.bench.run_all)."""

import sys

from lab.bench.run_all import main

sys.exit(main())
