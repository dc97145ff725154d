"""The one place that decides how command output is laid out."""

from __future__ import annotations

from rich.console import Console

PIPE_WIDTH = 160  # logs and pipes: wide enough for the result tables


def output_console() -> Console:
    """A console for standard output whose prose lines are never hard-wrapped.

    Rich wraps at the terminal width, and in a pipe or CI log at 80 columns, which splits a
    line like "ok /a/long/path/recipe.yaml: ... 12 sweep trials" wherever the path length
    happens to put the edge; scripts that grep the output then break. Tables still lay out
    to the width (the terminal's, or ``PIPE_WIDTH`` when there is none).
    """
    console = Console(soft_wrap=True)
    if not console.is_terminal:
        console = Console(soft_wrap=True, width=PIPE_WIDTH)
    return console
