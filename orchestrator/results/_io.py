"""Atomic file writes: write beside the target, then rename, so readers never see half a file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path in ``path``'s folder; on success it replaces ``path``.

    The file gets the permissions a plain ``open(path, "w")`` would give (mkstemp's are 0600).
    """
    path = os.path.abspath(os.fspath(path))
    folder, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}-", dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
