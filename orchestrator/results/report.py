"""A self-contained HTML report comparing sweeps.

One file: the plot embedded as base64 (and also written next to the HTML), the comparison,
budget and per-sweep frontier tables, each sweep's resolved recipe (HTML-escaped), and links
to its Parquet files relative to the report. Written aside and renamed, like every file here.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.fs as pafs

from orchestrator.results._format import format_frame
from orchestrator.results._io import atomic_path
from orchestrator.results.compare import DEFAULT_BUDGETS, Comparison, compare_sweeps, display_frame
from orchestrator.results.plots import plot_comparison
from orchestrator.results.reading import _filesystem, list_sweeps

__all__ = ["write_report"]

_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}pre{background:#f7f7f7;padding:1em;overflow:auto}
img{max-width:100%}"""


def _table(df) -> str:
    if df.empty:
        return "<p><em>none</em></p>"
    return format_frame(df).to_html(index=False, escape=True, border=0)


def _sweep_folders(paths) -> dict[str, str]:
    folders = {}
    for path in paths:
        if isinstance(path, (str, os.PathLike)):
            for row in list_sweeps(path).itertuples():
                folders.setdefault(row.sweep_id, row.path)
    return folders


def _sweep_section(comparison: Comparison, sweep, folder: str | None, out_dir: Path) -> str:
    parts = [f"<h2 id='{html.escape(sweep.sweep_id)}'>{html.escape(sweep.label)}</h2>"]
    if folder is not None:
        fs, _ = _filesystem(folder)
        links = []
        for name in ("trials.parquet", "epochs.parquet", "frontier.parquet"):
            if fs.get_file_info(f"{folder}/{name}").type == pafs.FileType.File:
                local = isinstance(fs, pafs.LocalFileSystem)
                href = os.path.relpath(f"{folder}/{name}", out_dir) if local else f"{folder}/{name}"
                links.append(f"<a href='{html.escape(Path(href).as_posix())}'>{name}</a>")
        parts.append(f"<p>Files: {' · '.join(links) or 'none'}</p>")
    parts.append(f"<h3>Frontier ({int(sweep.configs['on_front'].sum())} of "
                 f"{len(sweep.configs)} configurations)</h3>")
    parts.append(_table(display_frame(sweep.frontier, comparison.objectives)))
    recipe = None
    if folder is not None:
        fs, _ = _filesystem(folder)
        try:
            with fs.open_input_stream(f"{folder}/recipe.yaml") as f:
                recipe = f.read().decode("utf-8", errors="replace")
        except (FileNotFoundError, OSError):
            pass
    if recipe is not None:
        parts.append(f"<h3>Recipe</h3><pre>{html.escape(recipe)}</pre>")
    return "\n".join(parts)


def _gains_section(comparison: Comparison) -> str:
    items = []
    for g in comparison.gains:
        a = ", ".join(map(html.escape, g.base_dominated["config_id"].astype(str))) or "none"
        b = ", ".join(map(html.escape, g.other_dominated["config_id"].astype(str))) or "none"
        items.append(f"<li>{html.escape(g.base)} frontier points dominated by "
                     f"{html.escape(g.other)}: {a}</li><li>{html.escape(g.other)} frontier "
                     f"points dominated by {html.escape(g.base)}: {b}</li>")
    return f"<ul>{''.join(items)}</ul>" if items else ""


def write_report(paths: str | os.PathLike | Sequence, out_html: str | os.PathLike,
                 objectives: object = None, budgets: Sequence[float] = DEFAULT_BUDGETS,
                 title: str | None = None) -> Path:
    """Compare the sweeps under ``paths`` (results paths at any level and/or trials frames)
    and write a self-contained HTML report to ``out_html``; the plot also goes to
    ``<out_html stem>.png`` beside it. Returns the HTML path.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    comparison = compare_sweeps(paths, objectives, budgets)
    out_html = Path(out_html)
    out_html.parent.mkdir(parents=True, exist_ok=True)
    png = plot_comparison(comparison, out_html.with_suffix(".png"), title)
    image = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    folders = _sweep_folders(paths)
    title = title or "Compression sweeps: " + ", ".join(s.label for s in comparison.sweeps)
    objectives_text = ", ".join(str(o) for o in comparison.objectives)
    reference = ", ".join(f"{v:g}" for v in comparison.reference)
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}. Objectives: "
        f"{html.escape(objectives_text)}; hypervolume reference ({html.escape(reference)}); "
        f"hypervolume of the union of frontiers: {comparison.union_hypervolume:.6g}.</p>",
        f"<img alt='accuracy vs size' src='data:image/png;base64,{image}'>",
        "<h2>Comparison</h2>",
        "<p>Gains are relative to the first sweep. hv_low/hv_high: hypervolume with every "
        "configuration at the bad/good end of its 95 % CI; a gain exceeds the noise when the "
        "intervals do not overlap.</p>",
        _table(comparison.summary()), _gains_section(comparison),
        "<h2>Best validation accuracy within a size budget</h2>",
        "<p>budget: fraction of the dense baseline's size_bytes; delta vs the first sweep with "
        "a Welch 95 % CI where both have replicates.</p>",
        _table(comparison.budgets.drop(columns=["val_accuracy_std"], errors="ignore")),
        *(_sweep_section(comparison, s, folders.get(s.sweep_id), out_html.parent.resolve())
          for s in comparison.sweeps),
    ]
    page = (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
    with atomic_path(out_html) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    return out_html
