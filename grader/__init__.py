"""Gradient Lab grader: grades student PyTorch functions against hidden suites,
with the student's code isolated in a separate process."""

__version__ = "0.1.0"
