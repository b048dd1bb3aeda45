"""User-facing errors: each message is the one line the user sees (``error: <message>``, exit code 2).

Everything that checks user input (config values, env ids, run directories, checkpoints, sweep and
report options) raises a subclass of :class:`UserError`; the command-line entry points print its
message as one line and exit with code 2 before anything starts.
"""

from __future__ import annotations

import difflib


class UserError(ValueError):
    """Bad input; the message names the bad value and what is allowed, in one line."""


class ConfigError(UserError):
    """A bad configuration value."""


def suggest(name: str, known: list[str] | tuple[str, ...]) -> str:
    """``"; did you mean A, B?"`` for the closest of ``known`` to ``name`` (empty when none is close)."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    if not close:
        low = name.lower()
        close = [k for k in known if low and low in k.lower()][:3]
    return f"; did you mean {', '.join(close)}?" if close else ""
