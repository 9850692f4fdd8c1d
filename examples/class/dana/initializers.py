import torch

def calculate_fan_in_and_fan_out(tensor):
    # YOUR CODE HERE
    raise NotImplementedError()

def calculate_gain(nonlinearity, param=None):
    # YOUR CODE HERE
    raise NotImplementedError()

def xavier_uniform_(tensor, gain=1.0, generator=None):
    # YOUR CODE HERE
    raise NotImplementedError()

def xavier_normal_(tensor, gain=1.0, generator=None):
    # YOUR CODE HERE
    raise NotImplementedError()

def kaiming_uniform_(tensor, a=0, mode='fan_in', nonlinearity='leaky_relu', generator=None):
    # YOUR CODE HERE
    raise NotImplementedError()

def kaiming_normal_(tensor, a=0, mode='fan_in', nonlinearity='leaky_relu', generator=None):
    # YOUR CODE HERE
    raise NotImplementedError()
