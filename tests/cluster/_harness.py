"""What the cluster scenario scripts share: a private temp dir and free ports (other Ray
clusters may run on this machine), the environment Ray's processes inherit, a node-count
timeline, killing exactly the processes a scenario started, and the JSON verdict line.

Each scenario runs as its own process (never inside pytest's Ray) and ends by printing one
line ``VERDICT {json}`` that the pytest test asserts on."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
import traceback

VERDICT_PREFIX = "VERDICT "


def private_env(prefix: str) -> str:
    """A fresh temp dir for Ray, HOME (~/ray_results, ~/.ray) and matplotlib; must run before
    ``import ray``. Returns the dir."""
    root = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.environ.update({
        "RAY_TMPDIR": os.path.join(root, "ray"),
        "HOME": root,
        "MPLCONFIGDIR": os.path.join(root, "mpl"),
        "RAY_USAGE_STATS_ENABLED": "0",
        # Token auth would make a head started by `ray start` and this driver look for the
        # token under HOME; nothing here is reachable from outside anyway.
        "RAY_AUTH_MODE": "disabled",
        "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2",
        "RAY_AIR_NEW_OUTPUT": "0",
    })
    os.environ.pop("RAY_ADDRESS", None)
    os.makedirs(os.environ["RAY_TMPDIR"], exist_ok=True)
    return root


def free_ports(count: int) -> list[int]:
    """Ports nobody listens on right now (the OS picks them; all distinct)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def is_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is already dead
    except (OSError, IndexError):
        return False


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def descendants(root_pid: int | None = None) -> list[int]:
    """Every live process below ``root_pid`` (default: this one). Taken before a cluster is
    stopped: once a raylet dies its workers are re-parented and no longer look like ours."""
    root_pid = os.getpid() if root_pid is None else root_pid
    children: dict[int, list[int]] = {}
    for pid in all_pids():
        children.setdefault(_ppid(pid), []).append(pid)
    found, todo = [], [root_pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return [pid for pid in found if is_alive(pid)]


def reap(pids: list[int], grace_s: float = 10.0) -> list[str]:
    """Wait up to ``grace_s`` for ``pids`` to exit (Ray workers notice their raylet's death
    on their own), SIGKILL the rest; returns those, named."""
    end = time.monotonic() + grace_s
    while any(is_alive(pid) for pid in pids) and time.monotonic() < end:
        time.sleep(0.2)
    left = [pid for pid in pids if is_alive(pid)]
    named = [f"{pid} {_cmdline(pid)[:160].strip()}" for pid in left]
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return named


def kill_processes_mentioning(marker: str, grace_s: float = 5.0) -> list[str]:
    """SIGTERM then SIGKILL every process whose command line names ``marker`` (this
    scenario's private temp dir): stragglers that left the process group we killed."""
    me = os.getpid()
    names = {pid: _cmdline(pid) for pid in all_pids() if pid != me}
    pids = [pid for pid, cmd in names.items() if marker in cmd and is_alive(pid)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        end = time.monotonic() + grace_s
        while any(is_alive(pid) for pid in pids) and time.monotonic() < end:
            time.sleep(0.1)
    return [f"{pid} {names[pid][:160]}" for pid in pids]


class NodeTimeline:
    """Polls ``ray.nodes()`` in a thread: (seconds since start, alive nodes, alive GPU nodes,
    phase) whenever a count changes, so the verdict shows how the cluster grew and shrank."""

    def __init__(self, interval_s: float = 0.5):
        self.interval_s = interval_s
        self.events: list[tuple[float, int, int, str]] = []
        self.phase = "start"
        self._t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def counts() -> tuple[int, int]:
        import ray

        alive = [n for n in ray.nodes() if n.get("Alive")]
        return len(alive), sum(1 for n in alive if n.get("Resources", {}).get("GPU", 0) > 0)

    def sample(self) -> tuple[int, int]:
        alive, gpu = self.counts()
        last = self.events[-1] if self.events else None
        if last is None or (last[1], last[2], last[3]) != (alive, gpu, self.phase):
            self.events.append((round(time.monotonic() - self._t0, 1), alive, gpu, self.phase))
        return alive, gpu

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample()
            except Exception:  # a GCS hiccup must not end the timeline
                pass
            self._stop.wait(self.interval_s)

    def start(self) -> "NodeTimeline":
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def max_gpu(self, phase: str) -> int:
        return max((e[2] for e in self.events if e[3] == phase), default=0)


def sweep_recipe(results: str, name: str, **sections) -> dict:
    """A tiny recipe (digits MLP, one epoch) the scenarios adjust section by section."""
    data = {
        "name": name,
        "data": {"name": "digits"},
        "model": {"name": "mlp", "hidden": [32]},
        "train": {"epochs": 1, "batch_size": 64, "lr": 0.1, "optimizer": {"name": "sgd", "momentum": 0.9}},
        "baseline": {"enabled": False},
        "search": {"scheduler": {"name": "none"}},
        "results": {"path": results},
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    return data


def trial_rows(trials) -> list[dict]:
    cols = [c for c in ("trial_id", "status", "epochs_run", "val_accuracy", "error") if c in trials.columns]
    return json.loads(trials[cols].to_json(orient="records"))


def print_verdict(verdict: dict) -> None:
    print(VERDICT_PREFIX + json.dumps(verdict, default=str), flush=True)


def stop_local_cluster(cluster, root: str, verdict: dict) -> None:
    """Shut down a ray.cluster_utils.Cluster and kill whatever of it is left, recording
    stragglers and the time it took in ``verdict``."""
    import ray

    stopping = time.monotonic()
    ours = descendants()  # before the raylets die and their workers are re-parented
    ray.shutdown()
    if cluster is not None:
        cluster.shutdown()
    verdict["stragglers_killed"] = reap(ours) + kill_processes_mentioning(root)
    verdict["stop_s"] = round(time.monotonic() - stopping, 1)


@contextlib.contextmanager
def failures_into(verdict: dict):
    """Whatever the scenario raises becomes its verdict's failure (the verdict must say what
    happened); an interrupt (KeyboardInterrupt, SystemExit) is recorded and still propagates."""
    try:
        yield
    except BaseException as exc:  # noqa: BLE001
        traceback.print_exc()
        verdict["failures"] = [f"{type(exc).__name__}: {exc}"]
        if not isinstance(exc, Exception):
            raise


def conclude(verdict: dict, root: str, started: float) -> int:
    """Print the verdict and return the scenario's exit code; a failed run keeps its Ray
    logs under ``root`` for a look."""
    verdict["total_s"] = round(time.monotonic() - started, 1)
    verdict["ok"] = not verdict.get("failures")
    print_verdict(verdict)
    if verdict["ok"]:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if verdict["ok"] else 1
