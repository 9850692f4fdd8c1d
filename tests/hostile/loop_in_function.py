# EXERCISE: clipping
# EXPECT: fails clip_grad_value_
def clip_grad_value_(parameters, clip_value):
    while True:
        pass
