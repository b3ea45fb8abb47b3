"""Errors that reach a person: each says what was wrong and, where it helps, what to do."""


class GatehouseError(Exception):
    """Base of errors shown to people as they are (CLI prints the message, portal shows it)."""


class NotFound(GatehouseError):
    pass


class Conflict(GatehouseError):
    pass


class InvalidInput(GatehouseError):
    pass
