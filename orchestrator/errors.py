"""User-facing errors: every problem with the user's input, reported at once."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where (a dotted field path) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class RecipeError(ValueError):
    """A recipe (or override) is invalid. Holds every problem found, not just the first."""

    def __init__(self, problems: list[Problem], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        super().__init__(self.format())

    def format(self) -> str:
        head = f"invalid recipe {self.source}" if self.source else "invalid recipe"
        count = len(self.problems)
        lines = [f"{head}: {count} problem{'s' if count != 1 else ''}"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


class UsageError(ValueError):
    """Bad command-line input other than a recipe (a missing path, an unknown sweep id)."""
