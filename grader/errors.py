"""What a call into a student's function raises when it does not return a value.

Every error names the student function; ``str(error)`` is a one-line reason a
student can read. The pytest plugin turns an escaping StudentError into a failed
test with that line as its message.
"""


class StudentError(Exception):
    """Base of every failure caused by the submission (never by the grader)."""

    def __init__(self, function: str, reason: str):
        super().__init__(function, reason)
        self.function = function
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class StudentException(StudentError):
    """The student's code raised an exception."""

    def __init__(self, function: str, type_name: str, message: str, where: str = ""):
        self.type_name = type_name
        self.message = message
        self.where = where
        self.mro = [type_name]
        self.args_after = None   # with track=True: the arguments as the exception left them
        self.args_unreadable = None   # ... or why they could not be read
        if type_name == "NotImplementedError":
            reason = f"{function} is not implemented yet (it still raises NotImplementedError)"
        else:
            text = message.strip().splitlines()[0] if message.strip() else ""
            reason = f"{function} raised {type_name}" + (f": {text[:300]}" if text else "")
            if where:
                reason += f" ({where})"
        super().__init__(function, reason)


class StudentTimeout(StudentError):
    def __init__(self, function: str, seconds: float, earlier: bool = False):
        self.seconds = seconds
        if earlier:
            reason = f"{function} did not return within its time limit earlier, so its remaining tests were not run"
        else:
            reason = f"{function} did not return within {seconds:.1f} s (an endless loop, or far too slow)"
        super().__init__(function, reason)


class StudentCrash(StudentError):
    def __init__(self, function: str, description: str):
        self.description = description
        super().__init__(function, f"the submission process died while {function} ran: {description}")


class BannedAPI(StudentError):
    def __init__(self, function: str, api: str):
        self.api = api
        if api.startswith(("reflection", "patching", "tampering", "code the grader cannot check", "a banned function",
                           "a second copy", "importing the grader", "reading the grader", "running generated",
                           "compiling code")):
            why = ("which reaches into the grader's or torch's internals: not allowed in graded code "
                   "(the submission is flagged for review)")
        else:
            why = "which this exercise does not allow: implement it with basic tensor operations"
        super().__init__(function, f"{function} used {api}, {why}")


class MissingFunction(StudentError):
    def __init__(self, function: str, source: str = "the submission"):
        super().__init__(function, f"{function} is not defined in {source} (check its name and that its cell has no syntax error)")


class LoadError(StudentError):
    """The exercise's file could not be loaded at all (function is the file name)."""

    def __init__(self, source: str, why: str):
        self.why = why
        super().__init__(source, f"{source} could not be loaded: {why}")


class NotPlainData(StudentError):
    def __init__(self, function: str, what: str):
        self.what = what
        super().__init__(function, f"{function} returned {what}; expected tensors, numbers, None or tuples/lists/dicts of them")


class ProtocolError(StudentError):
    def __init__(self, function: str, what: str):
        super().__init__(function, f"the answer from {function} could not be read: {what}")


class Interrupt(BaseException):
    """Raised into student code by the grader's own timer; never reported as the student's exception."""


class GraderFailure(RuntimeError):
    """The grader itself cannot go on (not the student's fault): grading stops with this error."""
