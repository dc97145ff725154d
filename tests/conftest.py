"""Shared test set-up: Ray's and matplotlib's files go to a temp dir, and integration tests
share one local Ray per test session (starting Ray costs seconds on 2 cores)."""

from __future__ import annotations

import os
import tempfile

# Before anything imports Ray: keep its files (and usage reporting) out of the user's home.
_TMP = tempfile.mkdtemp(prefix="orch-test-")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_TMPDIR", _TMP)
os.environ.setdefault("MPLCONFIGDIR", os.path.join(_TMP, "mpl"))
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray with 2 CPUs for the whole session (as on this project's machines), with
    the dashboard: its State API lets Train free the workers of trials that Tune stops."""
    import ray

    ray.init(num_cpus=2, include_dashboard=True, log_to_driver=False, logging_level="WARNING",
             _temp_dir=os.path.join(_TMP, "ray"))
    yield ray
    ray.shutdown()


@pytest.fixture
def one_thread():
    """One intra-op thread for the test (timings and float sums repeatable on a shared box)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
