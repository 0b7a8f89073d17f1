"""The one error type every layer raises for bad user input: a single line the CLI prints before exiting 2."""


class CodesignError(ValueError):
    """A problem with the user's input (file, field, allowed values), reported as one line."""

    def __init__(self, message: str, source: str | None = None):
        message = " ".join(str(message).split())  # one line, always
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)
