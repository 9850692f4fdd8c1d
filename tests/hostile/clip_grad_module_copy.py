# EXERCISE: clipping
# EXPECT: load-error
# Loads a fresh copy of torch's clipping module from its file, under another name (the guard wraps the original).
import importlib.util
import torch

_spec = importlib.util.spec_from_file_location("my_clip", torch.nn.utils.clip_grad.__file__)
_copy = importlib.util.module_from_spec(_spec)
_loaded = _spec.loader.exec_module(_copy)   # (an assignment: top-level expressions never run)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    return _copy.clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite)
