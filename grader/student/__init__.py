"""What runs in the student's submission process (and nowhere else in grading).

``serve`` is the process's main loop, ``execute`` runs the student's program,
``calls`` serves one call of a student function, ``guard`` enforces the bans
while it runs, ``preload`` warms the sandbox's zygote. Nothing here imports the
grader's side (``grader.grading``) or reads the course: what it needs arrives
as plain data.
"""
