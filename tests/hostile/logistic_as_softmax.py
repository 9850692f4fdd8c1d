# EXERCISE: sigmoid_stack
# EXPECT: fails sigmoid log_sigmoid
# A softmax over two classes is the logistic function, and logsumexp is logaddexp over a list: torch's own
# stable sigmoid and log-sigmoid under other names.
import torch


def sigmoid(x):
    return torch.softmax(torch.stack([x, torch.zeros_like(x)]), dim=0)[0]


def log_sigmoid(x):
    return -torch.logsumexp(torch.stack([torch.zeros_like(x), -x]), dim=0)
