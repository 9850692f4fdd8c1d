"""`grader build`: render the course's notebooks and make an nbgrader course directory
(nbgrader's and otter's word for it: assign).

    from grader.assign import build_course
    summary = build_course("course-out", course)

writes ``course-out/`` with ``nbgrader_config.py``, ``source/<assignment>/``
(instructor version: solutions and hidden tests in place) and
``release/<assignment>/`` (student version, produced by nbgrader's own
generate_assignment: solutions stripped, hidden tests removed).
"""
from grader.assign.builder import BuildError, build_course, render_exercise  # noqa: F401

__all__ = ["build_course", "render_exercise", "BuildError"]
