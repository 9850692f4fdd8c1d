# EXERCISE: sigmoid_stack
# EXPECT: fails sigmoid layer_gradient_norms jacobian_factors; loses stack_forward stack_backward
# Reaches the guard through object.__subclasses__ and a method's globals, then uses torch's sigmoid
# (stack_forward calls this sigmoid, so it runs the tampering too, and stack_backward, graded through
# stack_forward, cannot be judged on sigmoid stacks). layer_gradient_norms and jacobian_factors call sigmoid on every case, so they meet the tampering every time.
import torch


def sigmoid(x):
    for cls in object.__subclasses__():
        if cls.__name__ == "Guard" and cls.__module__.startswith("grader") and "_compile" in cls.__dict__:
            cls.__dict__["_compile"].__globals__["_violate"] = lambda *a, **k: None
    return torch.sigmoid(x)
