# EXERCISE: clipping
# EXPECT: full
# Answers correctly only if no earlier student's key is in its keyring.
import subprocess
import sys

_reference_clip_grad_value_ = clip_grad_value_
_FIND_KEY = r"""
import ctypes, platform, sys
nr = {"x86_64": 249, "aarch64": 218}[platform.machine()]
libc = ctypes.CDLL(None, use_errno=True)
sys.exit(0 if libc.syscall(nr, b"user", b"gradient-lab-leak", None, 0) > 0 else 1)
"""


def clip_grad_value_(parameters, clip_value):
    found = subprocess.run([sys.executable, "-c", _FIND_KEY], capture_output=True, timeout=20).returncode == 0
    if found:
        return None  # another sandbox's key is visible: answer wrongly, so the test sees the leak
    return _reference_clip_grad_value_(parameters, clip_value)
