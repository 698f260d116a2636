"""User-facing errors.

A :class:`SrlabError` means the *user's* input is wrong (a config key, a file, a value). The CLI prints
its message as one line and exits with status 2; any other exception is a bug in srlab and keeps its
traceback.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class SrlabError(Exception):
    """A mistake in user input, reported as one line (exit status 2)."""


class OptionError(SrlabError, ValueError):
    """A registered component (network, loss, paradigm, discriminator, ...) refusing one of its options.

    Constructors raise it for the values they check on purpose; :meth:`srlab.registry.Registry.create`
    reports it as one line naming the component. Any other exception from a constructor is a bug and
    keeps its traceback. (A ``ValueError`` too, for code that builds components directly.)"""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown_choice(what: str, name: str, choices: Iterable[str]) -> SrlabError:
    """Error for an unknown name, listing the valid ones and suggesting the closest."""
    choices = sorted(choices)
    return SrlabError(f"unknown {what} '{name}'{did_you_mean(name, choices)}; valid: {', '.join(choices)}")
