# EXERCISE: sigmoid_stack
# EXPECT: fails sigmoid
# torch's sigmoid reached through a name built at run time.
import torch


def sigmoid(x):
    return getattr(torch, "SIGMOID".lower())(x)
