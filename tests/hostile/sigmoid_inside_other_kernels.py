# EXERCISE: sigmoid_stack
# EXPECT: fails sigmoid log_sigmoid
# torch's sigmoid computed inside another kernel (GLU: a * sigmoid(b)) and torch's log-sigmoid as a loss
# (soft_margin_loss(x, 1) = log(1 + exp(-x))): neither dispatches aten::sigmoid or aten::log_sigmoid.
import torch


def sigmoid(x):
    return torch.nn.functional.glu(torch.stack([torch.ones_like(x), x]), dim=0).squeeze(0)


def log_sigmoid(x):
    return -torch.nn.functional.soft_margin_loss(x, torch.ones_like(x), reduction="none")
