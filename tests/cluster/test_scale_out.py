"""Scale-out, tested offline: an autoscaling cluster that adds GPU nodes for a sweep and
releases them, and a DDP trial whose workers span two nodes.

Each scenario starts its own multi-node Ray on this machine, so it runs as a subprocess
(``autoscale_sweep.py``, ``multinode_ddp.py`` beside this file), never in pytest's own Ray.
The script prints ``VERDICT {json}``; the test asserts on its exit code and on the facts in
the JSON. The subprocess gets its own session: whatever it leaves behind is killed by
session id, so a crashed or timed-out scenario cannot leak Ray processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
VERDICT_PREFIX = "VERDICT "
SCENARIO_TIMEOUT_S = 180  # measured 35-65 s each on a loaded 2-core machine


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _kill_session(sid: int) -> list[str]:
    """SIGKILL every process still in session ``sid`` (one this test created)."""
    left: list[str] = []
    for _ in range(3):  # a process may start another while we scan
        found = _kill_session_once(sid)
        if not found:
            break
        left += found
        time.sleep(0.5)
    return left


def _kill_session_once(sid: int) -> list[str]:
    left = []
    for pid in (int(name) for name in os.listdir("/proc") if name.isdigit()):
        try:
            if pid != os.getpid() and os.getsid(pid) == sid and not _zombie(pid):
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    name = f.read().replace(b"\0", b" ").decode(errors="replace")[:160]
                os.kill(pid, signal.SIGKILL)
                left.append(f"{pid} pgid={os.getpgid(pid)} {name}")
        except (OSError, ProcessLookupError):
            continue
    return left


def run_scenario(script: str, *args: str, timeout_s: float = SCENARIO_TIMEOUT_S) -> tuple[int, dict, str]:
    """Run one scenario script; (exit code, its verdict, its output)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_TMPDIR")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.Popen([sys.executable, str(HERE / script), *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    timed_out = False
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        # No SIGTERM first: once the script has called ray.init, Ray's core worker answers
        # SIGTERM with an abort and no Python cleanup runs. Everything the scenario started
        # lives in its session, so killing the session is both complete and safe.
        timed_out = True
        _kill_session(proc.pid)
        out, _ = proc.communicate()
        out += f"\n[test] scenario timed out after {timeout_s} s; its session was killed"
    finally:
        leaked = _kill_session(proc.pid)
    lines = [line for line in out.splitlines() if line.startswith(VERDICT_PREFIX)]
    verdict = json.loads(lines[-1][len(VERDICT_PREFIX):]) if lines else {}
    verdict["leaked_pids"] = leaked
    verdict["timed_out"] = timed_out
    return proc.returncode, verdict, out


def _explain(verdict: dict, out: str) -> str:
    return f"verdict={json.dumps(verdict, indent=1)}\n--- output tail ---\n{out[-3000:]}"


@pytest.mark.parametrize("plan_from_file", [False, True], ids=["elastic", "planned-from-cluster-file"])
def test_autoscaler_adds_gpu_nodes_for_the_sweep_and_releases_them_when_idle(plan_from_file):
    """Head with 1 CPU, GPU worker type min 0 / max 2 (fake_multinode): the GPU trials make
    the autoscaler add nodes, all trials complete, and the idle nodes are removed again.

    elastic: planned from the running cluster (no GPU yet), one trial at a time → 1 GPU node.
    planned-from-cluster-file (``run --cluster``): 2 trials at once → both GPU nodes."""
    rc, verdict, out = run_scenario("autoscale_sweep.py", *(["--plan-from-cluster-file"] if plan_from_file else []))
    why = _explain(verdict, out)
    assert not verdict["timed_out"] and "failures" in verdict, f"no verdict (rc={rc})\n{out[-3000:]}"
    assert verdict["failures"] == [], why
    assert rc == 0, why
    assert verdict["gpu_nodes_at_start"] == 0, why
    assert verdict["gpu_nodes_after_idle"] == 0, why
    assert [t["status"] for t in verdict["trials"]] == ["completed"] * 3, why
    if plan_from_file:
        assert verdict["plan_max_concurrent"] == 2 and verdict["max_gpu_nodes_during_sweep"] == 2, why
    else:  # the elastic plan says why it runs one trial at a time
        assert verdict["plan_max_concurrent"] == 1 and verdict["plan_notes"], why
        assert verdict["max_gpu_nodes_during_sweep"] >= 1, why
    # The timeline itself: GPU nodes appear only after the sweep began and are gone at the end.
    phases = [(phase, gpus) for _, _, gpus, phase in verdict["timeline"]]
    assert phases[0] == ("start", 0) and phases[-1] == ("idle", 0), why
    assert verdict["leaked_pids"] == [], why


def test_ddp_workers_of_one_trial_span_two_nodes():
    """Head without CPUs + two 1-CPU nodes; a 2-worker DDP trial (0.9 CPU per worker) must
    put one worker on each node, and it completes."""
    rc, verdict, out = run_scenario("multinode_ddp.py")
    why = _explain(verdict, out)
    assert not verdict["timed_out"] and "failures" in verdict, f"no verdict (rc={rc})\n{out[-3000:]}"
    assert verdict["failures"] == [], why
    assert rc == 0, why
    assert [(t["status"], t["epochs_run"]) for t in verdict["trials"]] == [("completed", 2)], why
    nodes = [w["node_id"] for w in verdict["workers"]]
    assert len(nodes) == 2 and len(set(nodes)) == 2, why
    assert set(nodes) == set(verdict["cpu_nodes"]) and verdict["head_node"] not in nodes, why
    assert verdict["trials"][0]["val_accuracy"] > 0.5, why
    assert verdict["leaked_pids"] == [], why
