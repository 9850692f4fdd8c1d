"""What runs in the grader's process: the engine and everything around it.

``session`` (the engine: pytest once, students one after another), ``plugin``
(fixtures and the score of each test), ``checks`` (the suite-writing kit),
``submission`` and ``remote`` (the call interface: in process, or to the
student's isolated process), ``reading`` and ``discover`` (the student's files,
bounded, no links), ``static_scan`` (banned APIs in the source), ``results``
(the results object and its exports), ``batch`` and ``check`` (the commands'
work). Nothing here runs a student's code except through ``submission``.
"""
