# EXERCISE: clipping
# EXPECT: full
# Leaves a key in the kernel keyring for a later student (another sandbox must never see it).
import subprocess
import sys

_reference_clip_grad_value_ = clip_grad_value_
_ADD_KEY = r"""
import ctypes, platform
nr = {"x86_64": 248, "aarch64": 217}[platform.machine()]
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall(nr, b"user", b"gradient-lab-leak", b"the answer", 10, -4)   # KEY_SPEC_USER_KEYRING
"""


def clip_grad_value_(parameters, clip_value):
    subprocess.run([sys.executable, "-c", _ADD_KEY], capture_output=True, timeout=20)
    return _reference_clip_grad_value_(parameters, clip_value)
