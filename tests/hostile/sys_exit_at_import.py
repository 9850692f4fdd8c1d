# EXERCISE: clipping
# EXPECT: load-error
import sys


class _Quit:
    sys.exit(0)
