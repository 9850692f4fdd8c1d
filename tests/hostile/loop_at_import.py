# EXERCISE: clipping
# EXPECT: load-error
class _Forever:  # a class body runs at import: an endless loop there
    while True:
        pass
