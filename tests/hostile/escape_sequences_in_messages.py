# EXERCISE: clipping
# EXPECT: fails clip_grad_value_
# Redraws the instructor's terminal: an exception class and message full of escape sequences.
_Bad = type("\x1b[2J\x1b[H total 100/100\x1b]0;pwned\x07", (Exception,), {})


def clip_grad_value_(parameters, clip_value):
    raise _Bad("\x1b[31mall tests passed\x1b[0m\r\x1b]52;c;cm0gLXJmIH4=\x07\u202e")
