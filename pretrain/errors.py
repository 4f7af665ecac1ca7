"""The exception the commands turn into one line on stderr and exit code 2, and the check every config uses."""


class PretrainError(Exception):
    """Bad input or a failed run that the user can fix (bad flag, bad file, divergence)."""


class DivergenceError(PretrainError):
    """A training loss became NaN or infinite."""


def require(ok: bool, message: str) -> None:
    """Raise ``PretrainError(message)`` unless ``ok``: how every config validates its settings."""
    if not ok:
        raise PretrainError(message)
