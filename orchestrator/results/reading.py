"""Read a results tree: ``<root>/<recipe name>/<sweep id>/{trials,epochs}.parquet``.

Any of the three levels may be passed: a results root, a recipe folder, or one sweep folder.
All matching files are read as one pyarrow dataset whose schema is the permissive union of
the files' schemas, so sweeps whose ``param.*`` columns differ sit side by side (absent
columns are null, int and float versions of a column become float). Names starting with
``_`` or ``.`` are Ray's internals and are skipped, as pyarrow's ``ignore_prefixes`` does.
Paths may be local or any URI pyarrow understands (``s3://``, ``gs://``, ``file://``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from orchestrator.results.objectives import ResultsInputError

__all__ = ["list_sweeps", "read_epochs", "read_results", "sweep_dirs"]

_IGNORED = ("_", ".")
_MARKERS = ("trials.parquet", "sweep.json")


def _filesystem(path: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    path = os.fspath(path)
    if "://" in path:
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), os.path.abspath(path)


def _children(fs: pafs.FileSystem, folder: str) -> list[pafs.FileInfo]:
    infos = fs.get_file_info(pafs.FileSelector(folder, recursive=False))
    return sorted((i for i in infos if not i.base_name.startswith(_IGNORED)),
                  key=lambda i: i.base_name)


def sweep_dirs(path: str | os.PathLike) -> tuple[pafs.FileSystem, list[str]]:
    """The sweep folders at or below ``path`` (a root, a recipe folder or a sweep folder).

    A sweep folder holds ``trials.parquet`` or ``sweep.json``; the search goes at most two
    levels down and never into ``_``/``.`` folders. Raises ``ResultsInputError`` if ``path``
    does not exist.
    """
    fs, base = _filesystem(path)
    if fs.get_file_info(base).type != pafs.FileType.Directory:
        raise ResultsInputError(f"path {os.fspath(path)!r}: no such results folder")
    found, level = [], [base]
    for _ in range(3):
        below = []
        for folder in level:
            children = _children(fs, folder)
            if any(c.base_name in _MARKERS and c.type == pafs.FileType.File for c in children):
                found.append(folder)
            else:
                below += [c.path for c in children if c.type == pafs.FileType.Directory]
        level = below
    return fs, found


def _select(ids: object) -> list[str] | None:
    if ids is None:
        return None
    return [ids] if isinstance(ids, str) else [str(i) for i in ids]


def _read(path, name: str, filters: dict[str, object]) -> pd.DataFrame:
    fs, folders = sweep_dirs(path)
    files = []
    for folder in folders:
        file = f"{folder}/{name}"
        if fs.get_file_info(file).type == pafs.FileType.File:
            files.append(file)
    if not files:
        return pd.DataFrame()
    # Without the files' pandas metadata: it describes one file (e.g. an Int64 column that
    # another file holds as float) and would mislead to_pandas about the unified table.
    schema = pa.unify_schemas([pq.read_schema(f, filesystem=fs) for f in files],
                              promote_options="permissive").remove_metadata()
    dataset = ds.dataset(files, schema=schema, format="parquet", filesystem=fs)
    condition = None
    for column, wanted in filters.items():
        wanted = _select(wanted)
        if wanted is None:
            continue
        if column not in schema.names:
            raise ResultsInputError(
                f"{column}: the files at {os.fspath(path)!r} have no such column")
        term = ds.field(column).isin(wanted)
        condition = term if condition is None else condition & term
    return dataset.to_table(filter=condition).to_pandas()


def read_results(path: str | os.PathLike, recipe: str | Iterable[str] | None = None,
                 sweep_id: str | Iterable[str] | None = None,
                 status: str | Iterable[str] | None = None) -> pd.DataFrame:
    """All trial rows under ``path`` as one DataFrame, optionally filtered by recipe name(s),
    sweep id(s) and status(es) (``"completed"``, ``"stopped"``, ``"failed"``).

    Includes the baseline row and failed trials unless filtered; the frontier functions
    decide which rows count. An empty DataFrame if there are no trials files.
    """
    return _read(path, "trials.parquet",
                 {"recipe_name": recipe, "sweep_id": sweep_id, "status": status})


def read_epochs(path: str | os.PathLike, sweep_id: str | Iterable[str] | None = None,
                trial_id: str | Iterable[str] | None = None) -> pd.DataFrame:
    """All per-epoch rows under ``path`` (``sweep_id, trial_id, epoch, val_accuracy, …``)."""
    return _read(path, "epochs.parquet", {"sweep_id": sweep_id, "trial_id": trial_id})


def list_sweeps(path: str | os.PathLike) -> pd.DataFrame:
    """One row per sweep folder under ``path``, from its ``sweep.json``, oldest first.

    Columns: ``recipe_name, sweep_id, created_at`` (UTC timestamp), ``recipe_hash``,
    ``orchestrator_version``, ``objectives``, ``path``. A sweep folder without ``sweep.json``
    (e.g. still running) is listed with ids taken from its folder names and no date.
    """
    fs, folders = sweep_dirs(path)
    rows = []
    for folder in folders:
        parts = folder.rstrip("/").split("/")
        meta = {"recipe_name": parts[-2] if len(parts) > 1 else None, "sweep_id": parts[-1]}
        try:
            with fs.open_input_stream(f"{folder}/sweep.json") as f:
                meta.update(json.loads(f.read().decode()))
        except (FileNotFoundError, OSError, json.JSONDecodeError):
            pass
        rows.append({**meta, "path": folder})
    columns = ["recipe_name", "sweep_id", "created_at", "recipe_hash", "orchestrator_version",
               "objectives", "path"]
    df = pd.DataFrame(rows)
    df = df.reindex(columns=columns + [c for c in df.columns if c not in columns])
    df["created_at"] = pd.to_datetime(df["created_at"], utc=True, errors="coerce", format="ISO8601")
    return df.sort_values(["created_at", "recipe_name", "sweep_id"], kind="stable",
                          na_position="last").reset_index(drop=True)
