"""What runs in a Jupyter kernel: the notebook's self-check cells and nbgrader's autograder
cells. Both are the grading engine on the notebook's own namespace, in the kernel's process:
a convenience that a student's kernel can tamper with (the secure route is `grader batch`)."""
