"""Where a sweep's files go, and writing them so that readers never see half a file.

Layout: ``<results.path>/<recipe name>/<sweep id>/{trials,epochs,frontier}.parquet`` plus
``recipe.yaml`` and ``sweep.json``. Ray's own files live under ``_tune/`` beside them; a
leading underscore keeps them out of pyarrow dataset discovery. Every file is written to a
``_``-prefixed temporary name first and then renamed, so a crash leaves the old file or the
new one, never a partial one, and a temporary file is invisible to readers.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq


def new_sweep_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def is_uri(path: str) -> bool:
    return "://" in path


@dataclass(frozen=True)
class SweepDir:
    """One sweep's folder, local or behind a pyarrow filesystem URI (s3://, gs://, ...)."""

    root: str  # results.path as given (absolute when local)
    recipe_name: str
    sweep_id: str

    @classmethod
    def create(cls, results_path: str, recipe_name: str, sweep_id: str | None = None) -> "SweepDir":
        root = results_path if is_uri(results_path) else str(Path(results_path).expanduser().resolve())
        return cls(root, recipe_name, sweep_id or new_sweep_id())

    @property
    def path(self) -> str:
        return f"{self.root.rstrip('/')}/{self.recipe_name}/{self.sweep_id}"

    @property
    def ray_storage(self) -> str:
        """Tune/Train storage for this sweep (absolute path or URI, as Ray requires)."""
        return f"{self.path}/_tune"

    def _fs(self) -> tuple[pafs.FileSystem, str]:
        if is_uri(self.path):
            return pafs.FileSystem.from_uri(self.path)
        return pafs.LocalFileSystem(), self.path

    def makedirs(self) -> None:
        fs, base = self._fs()
        fs.create_dir(base, recursive=True)

    def exists(self, name: str) -> bool:
        fs, base = self._fs()
        return fs.get_file_info(f"{base}/{name}").type == pafs.FileType.File

    def _write_atomically(self, name: str, write) -> str:
        fs, base = self._fs()
        fs.create_dir(base, recursive=True)
        final, tmp = f"{base}/{name}", f"{base}/_tmp-{uuid.uuid4().hex}-{name}"
        try:
            write(fs, tmp)
            fs.move(tmp, final)  # rename(2) locally; object stores copy then delete
        finally:
            if fs.get_file_info(tmp).type != pafs.FileType.NotFound:
                fs.delete_file(tmp)
        return f"{self.path}/{name}"

    def write_table(self, name: str, df: pd.DataFrame) -> str:
        table = pa.Table.from_pandas(df, preserve_index=False)

        def write(fs, tmp):
            with fs.open_output_stream(tmp) as out:
                pq.write_table(table, out)

        return self._write_atomically(name, write)

    def write_text(self, name: str, text: str) -> str:
        def write(fs, tmp):
            with fs.open_output_stream(tmp) as out:
                out.write(text.encode())

        return self._write_atomically(name, write)

    def write_json(self, name: str, data: dict) -> str:
        return self.write_text(name, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")

    def read_text(self, name: str) -> str:
        fs, base = self._fs()
        with fs.open_input_stream(f"{base}/{name}") as f:
            return f.read().decode()

    def read_table(self, name: str) -> pd.DataFrame:
        fs, base = self._fs()
        with fs.open_input_file(f"{base}/{name}") as f:
            return pq.read_table(f).to_pandas()


def local_path(path: str) -> str | None:
    """The local filesystem path of ``path``, or None for a remote URI."""
    if path.startswith("file://"):
        return path[len("file://"):]
    return None if is_uri(path) else os.path.abspath(path)
