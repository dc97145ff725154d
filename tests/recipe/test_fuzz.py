"""Hostile-input fuzzing of recipes: every input gives a valid template or a clean RecipeError.

Three generators, each a fixed-seed hypothesis run (CI sees the same cases every time):
  (a) YAML text: garbage, tags, anchors/alias bombs, deep nesting, huge ints, .nan, duplicates;
  (b) shipped recipes with one or several leaves mutated (wrong types, out of range, unknown
      registry names, malformed search-space leaves, extra keys, hostile names and paths);
  (c) command-line overrides ``key=value`` with odd keys and values.
``outcome`` is the oracle: a RecipeError must list problems with non-empty messages of
bounded size, anything else escaping (TypeError, RecursionError, ValueError...) is a bug, and
so is a case slower than ``TIME_LIMIT_S``. A *valid* template must be usable: its hash and
YAML dump work, its name stays inside the results folder, and every trial point of its
search space resolves (validation promises to fail at load time, not inside a trial).
Deterministic regression tests for each bug the fuzzers found are at the end of the file.
"""

from __future__ import annotations

import itertools
import math
import re
import signal
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.errors import RecipeError
from orchestrator.recipe import build_template, load_recipe, parse_yaml
from orchestrator.recipe.schema import NAME_PATTERN, Recipe
from orchestrator.recipe.space import LEAF_KINDS

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "recipes").glob("*.yaml"))
TIME_LIMIT_S = 3.0  # legit inputs take milliseconds; a bomb or a quadratic blow-up does not
MAX_COMBOS = 64  # trial points resolved per valid template


# --- the oracle --------------------------------------------------------------------------

class CaseTimeout(BaseException):
    """Raised by the alarm when one case runs past TIME_LIMIT_S (a hang, not a clean error)."""


@contextmanager
def time_limit(seconds: float):
    def _raise(signum, frame):
        raise CaseTimeout(f"took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def production_stack(free_frames: int = 990):
    """The stack a user's ``orchestrator validate`` has: Python's default limit of 1000 frames,
    nearly all free. Hypothesis raises the limit by 2000 while a test runs, which would hide
    a RecursionError that users hit."""
    depth, frame = 0, sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + free_frames)
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


@dataclass(frozen=True)
class Outcome:
    kind: str  # "valid" | "error" | "escape"
    detail: str = ""
    seconds: float = 0.0


def _trial_points(template) -> list[dict]:
    """Points of the search space a sweep may run: every combination of candidates (each
    leaf's options, range ends and a range midpoint), sampled down to MAX_COMBOS."""
    choices = []
    for leaf in template.leaves:
        values = list(leaf.candidates())
        if leaf.kind == "uniform":
            values.append((leaf.values[0] + leaf.values[1]) / 2)
        elif leaf.kind == "loguniform":
            values.append(math.sqrt(leaf.values[0] * leaf.values[1]))
        choices.append([(leaf.path, v) for v in values[:8]])
    points = itertools.islice(itertools.product(*choices), MAX_COMBOS)
    return [dict(point) for point in points]


def check_valid(template, text_len: int) -> None:
    """What a template that passed validation must offer the rest of the pipeline."""
    assert isinstance(template.base, Recipe)
    name, path = template.base.name, template.base.results.path
    assert re.fullmatch(NAME_PATTERN, name) and name not in (".", "..") and "/" not in name, name
    assert "\x00" not in path, f"results.path with a NUL byte accepted: {path!r}"
    assert len(template.hash) == 16
    yaml.safe_dump(template.data)  # written as recipe.yaml next to the results
    template.baseline_recipe()
    for point in _trial_points(template):
        try:
            template.resolve(point)
        except Exception as exc:  # noqa: BLE001 - any failure here is a trial that dies at run time
            raise AssertionError(f"valid template, but trial point {point} fails: {exc}") from None


def check_error(exc: RecipeError, text_len: int) -> None:
    assert exc.problems, "a RecipeError must hold at least one problem"
    for problem in exc.problems:
        assert isinstance(problem.path, str), problem
        assert isinstance(problem.message, str) and problem.message.strip(), problem
    report = exc.format()
    # Echoing the input is fine; amplifying a small file into megabytes (alias bombs) is not.
    assert len(report) <= 20_000 + 100 * text_len, f"error report of {len(report)} chars"


def outcome(call, text_len: int) -> Outcome:
    """Run ``call()`` (-> RecipeTemplate) under the time limit and classify what happens."""
    started = time.perf_counter()
    try:
        with time_limit(TIME_LIMIT_S):
            try:
                with production_stack():
                    template = call()
            except RecipeError as exc:
                check_error(exc, text_len)
                return Outcome("error", str(exc.problems[0])[:200], time.perf_counter() - started)
            check_valid(template, text_len)
            return Outcome("valid", template.name, time.perf_counter() - started)
    except (Exception, CaseTimeout) as exc:  # noqa: BLE001 - the point is to catch everything
        return Outcome("escape", f"{type(exc).__name__}: {str(exc)[:300]}", time.perf_counter() - started)


# --- hostile values -----------------------------------------------------------------------

HOSTILE_SCALAR_TEXT = [
    "~", "null", "''", '""', "yes", "no", "on", "off", "0", "-0", "-1", "1.5", "1e3", "1.0e+400",
    ".nan", ".NaN", ".inf", "-.inf", "0x7fffffffffffffff", "0o777", "0b1010", "1_000_000", "1:20:30",
    "9" * 40, "-" + "9" * 40, "9" * 4400, "0x" + "f" * 3700, "2001-12-14", "2001-12-14t21:59:43.10-05:00",
    "!!python/object:os.system", "!!python/object/apply:os.system ['echo pwned']",
    "!!python/name:builtins.eval", "!!binary aGVsbG8=", "!!set {a, b}", "!!omap [a: 1]",
    "!!int '12'", "!!float abc", "!!int abc", "!!int 0x", "!!int _", "!!bool maybe", "!!timestamp abc",
    "2001-02-30", "2001-13-01", "!!float 0x10", "!!str", "!!map {}", "!!seq []", "!custom 1", "!<tag:x> 1",
    "*undefined", "&anchor 3", "{", "[", "'unterminated", '"bad \\q escape"', "|", ">-", "@", "`", "%",
    "[1, 2", "{a: 1", "[[[[[[[[", "}}}}", "a: b: c", "- - -", "? x", "\t", "\u2028", "\ufeff", "\x85",
    "x" * 5000, "../../etc", "/", "s3://bucket", "a\\0b", "\x1b[31mred",
]
REGISTRY_NAMES = {
    "data.name": ["digits", "mnist1d", "synthetic", "cifar10", "imagenet", "Digits", "digits ", ""],
    "model.name": ["mlp", "cnn1d", "cnn2d", "resnet", "MLP", "transformer", "os.system", ""],
    "train.optimizer.name": ["sgd", "adam", "adamw", "torch.optim.SGD", "SGD", ""],
    "train.lr_schedule.name": ["constant", "exponential", "step", "cosine", "linear", "onecycle", ""],
    "search.scheduler.name": ["asha", "median", "none", "hyperband", "pbt", "ASHA", None, ""],
    "search.algorithm": ["random", "optuna", "bayesopt", "grid", ""],
    "search.metric": ["val_accuracy", "size_bytes", "accuracy", "val_acc", ""],
    "search.mode": ["max", "min", "maximize", ""],
    "parallel.strategy": ["ddp", "pipeline", "fsdp", "horovod", ""],
    "train.init": ["scratch", "baseline", "pretrained", ""],
}
HOSTILE_NAMES = ["../../x", "..", ".", "/abs", "a/b", "a\\b", "x\n", "\nx", "x\x00y", "", " ", "a" * 65,
                 "a" * 64, "-x", "_x", "x.y", "x..y", "~", "$HOME", "${X}", "con", "ünïcode", "x y", "*"]
HOSTILE_PATHS = ["../../etc", "/", "/etc/passwd", "s3://bucket", "s3://", "gs://b/p", "file:///tmp/x",
                 "", " ", "\t", "a\x00b", "\x00", "x" * 5000, "/" + "y/" * 2000, "~", "~root/x", "C:\\x",
                 "http://example.com/x", "results/../../..", ".", "..", "\n"]

# Every field path of the schema, so mutations reach keys a shipped recipe leaves out.
SCHEMA_PATHS = [
    "name", "description", "data.name", "data.val_fraction", "data.test_fraction", "data.seed",
    "data.num_samples", "data.num_features", "data.num_classes", "model.name", "model.hidden",
    "model.channels", "model.kernel_size", "model.dropout", "train.epochs", "train.batch_size",
    "train.lr", "train.seed", "train.init", "train.threads", "train.optimizer.name",
    "train.optimizer.momentum", "train.optimizer.nesterov", "train.optimizer.weight_decay",
    "train.lr_schedule.name", "train.lr_schedule.decay", "train.lr_schedule.step_epochs",
    "train.lr_schedule.gamma", "train.lr_schedule.min_lr_ratio", "train.lr_schedule.warmup_epochs",
    "parallel.strategy", "parallel.workers", "parallel.cpus_per_worker", "parallel.gpus_per_worker",
    "parallel.use_gpu", "baseline.enabled", "baseline.epochs", "baseline.overrides",
    "search.num_samples", "search.scheduler", "search.scheduler.name", "search.scheduler.grace_period",
    "search.scheduler.reduction_factor", "search.scheduler.brackets",
    "search.scheduler.min_samples_required", "search.metric", "search.mode",
    "search.max_concurrent_trials", "search.algorithm", "search.seed", "results.path", "results",
    "data", "model", "train", "parallel", "baseline", "search",
]
SWEEPABLE_PATHS = [p for p in SCHEMA_PATHS if p.split(".")[0] in ("data", "model", "train") and "." in p]


# Values each valid on their own, for leaves whose combinations may not be.
PLAUSIBLE = {
    "data.name": ["digits", "mnist1d", "synthetic"], "model.name": ["mlp", "cnn1d", "cnn2d"],
    "data.val_fraction": [0.1, 0.3, 0.5], "data.test_fraction": [0.1, 0.3, 0.5],
    "data.num_samples": [100, 400, 5000], "data.num_classes": [2, 20, 200],
    "train.optimizer.nesterov": [False, True], "train.optimizer.momentum": [0.9, 0.0],
    "train.epochs": [1, 3, 10], "train.batch_size": [16, 64], "train.seed": [0, 7], "train.threads": [1, 2],
    "model.kernel_size": [1, 3, 5], "model.dropout": [0.0, 0.5], "train.lr": [0.01, 0.1],
}


@st.composite
def plausible_leaf(draw, path: str):
    pool = PLAUSIBLE[path]
    kind = draw(st.sampled_from(["grid", "choice", "range"]))
    if kind == "range" and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pool):
        lo, hi = sorted(draw(st.lists(st.sampled_from(pool), min_size=2, max_size=2, unique=True)))
        return {draw(st.sampled_from(["uniform", "loguniform", "randint"])): [lo, hi]}
    return {"grid" if kind == "range" else kind: draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3, unique=True))}


def nested(depth: int, kind: str):
    node: object = 1
    for _ in range(depth):
        node = [node] if kind == "list" else {"a": node}
    return node


numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2**31, 2**32, 2**63, 2**64, 10**30, 10**400, -(10**400)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), -0.0, 5e-324, 1e308, 0.5, 0.9999999]),
)
scalars = st.one_of(
    st.none(), st.booleans(), numbers,
    st.text(max_size=20), st.sampled_from(HOSTILE_NAMES + HOSTILE_PATHS),
    st.binary(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.text(max_size=6), st.integers(), st.sampled_from(LEAF_KINDS)),
                                            inner, max_size=3)),
    max_leaves=12,
)
leaf_bodies = st.one_of(
    st.sampled_from([[], [1], [2, 1], [1, 1], [0, 1], [-1, 1], [1, 2, 3], [True, False], ["a", "b"], [None],
                     [float("nan"), 1], [1, float("inf")], [1, 10**400], [0.5, 10**30], [[1], [2]],
                     [{"grid": [1]}], [1e-300, 1e300], "1, 2", None, {"a": 1}]),
    values,
)
leaves = st.one_of(
    st.builds(lambda k, b: {k: b}, st.sampled_from(LEAF_KINDS), leaf_bodies),
    st.builds(lambda k1, k2, b: {k1: b, k2: b}, st.sampled_from(LEAF_KINDS), st.sampled_from(LEAF_KINDS + ("x",)), leaf_bodies),
    st.builds(lambda k, lo, hi: {k: [lo, hi]}, st.sampled_from(LEAF_KINDS), numbers, numbers),
)


def _shipped_data() -> list[dict]:
    return [parse_yaml(p.read_text(encoding="utf-8"), str(p)) for p in SHIPPED]


# A second valid recipe that sets every section, so mutations hit more than the quickstart's keys.
FULL = {
    "name": "full", "description": "every section set",
    "data": {"name": "synthetic", "num_samples": 400, "num_features": 8, "num_classes": 3, "seed": 1},
    "model": {"name": "mlp", "hidden": [16], "dropout": {"uniform": [0.0, 0.5]}},
    "train": {"epochs": {"grid": [2, 3]}, "batch_size": {"choice": [16, 32]}, "lr": {"loguniform": [1e-3, 0.1]},
              "seed": {"randint": [0, 10]}, "optimizer": {"name": "adam", "weight_decay": 0.0},
              "lr_schedule": {"name": "cosine", "min_lr_ratio": 0.1, "warmup_epochs": 1}},
    "parallel": {"workers": 2, "cpus_per_worker": 1},
    "baseline": {"enabled": True, "epochs": 2, "overrides": {"train.lr": 0.01}},
    "search": {"num_samples": 2, "scheduler": {"name": "median", "grace_period": 1}, "max_concurrent_trials": 2},
    "results": {"path": "results"},
}
BASES = _shipped_data() + [FULL, {"name": "minimal"}]


def set_dotted(data: dict, path: str, value) -> None:
    *parents, last = path.split(".")
    node = data
    for key in parents:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[last] = value


def del_dotted(data: dict, path: str) -> None:
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(last, None)


@st.composite
def mutation(draw):
    """(label, function(data) -> None) for one hostile edit of a recipe mapping."""
    kind = draw(st.sampled_from(["value", "registry", "leaf", "delete", "extra", "name", "path", "deep", "combo", "combo"]))
    if kind == "registry":
        path = draw(st.sampled_from(sorted(REGISTRY_NAMES)))
        value = draw(st.one_of(st.sampled_from(REGISTRY_NAMES[path]), st.text(max_size=12)))
        return f"{path}={value!r}", lambda d: set_dotted(d, path, value)
    if kind == "name":
        value = draw(st.one_of(st.sampled_from(HOSTILE_NAMES), st.text(max_size=70)))
        return f"name={value!r}", lambda d: d.__setitem__("name", value)
    if kind == "path":
        value = draw(st.one_of(st.sampled_from(HOSTILE_PATHS), st.text(max_size=40)))
        return f"results.path={value!r}", lambda d: set_dotted(d, "results.path", value)
    if kind == "delete":
        path = draw(st.sampled_from(SCHEMA_PATHS))
        return f"del {path}", lambda d: del_dotted(d, path)
    if kind == "extra":
        parent = draw(st.sampled_from(["", "data", "model", "train", "train.optimizer", "search.scheduler", "results"]))
        key = draw(st.one_of(st.text(max_size=10), st.sampled_from(["__class__", "_type", "a.b", "grid", "name "])))
        value = draw(scalars)
        path = f"{parent}.{key}" if parent else key
        return f"extra {path!r}={value!r}", lambda d: set_dotted(d, path, value)
    if kind == "deep":
        path = draw(st.sampled_from(SCHEMA_PATHS))
        depth, shape = draw(st.sampled_from([1, 10, 100, 1000, 1500])), draw(st.sampled_from(["list", "dict"]))
        return f"{path}=<{shape} nested {depth} deep>", lambda d: set_dotted(d, path, nested(depth, shape))
    if kind == "combo":  # leaves of plausible values on fields that cross-field rules tie together
        paths = draw(st.lists(st.sampled_from(sorted(PLAUSIBLE)), min_size=1, max_size=3, unique=True))
        edits = {path: draw(plausible_leaf(path)) for path in paths}
        return f"{edits!r}", lambda d: [set_dotted(d, path, leaf) for path, leaf in edits.items()]
    path = draw(st.sampled_from(SCHEMA_PATHS))
    value = draw(leaves if kind == "leaf" else values)
    return f"{path}={value!r}"[:300], lambda d: set_dotted(d, path, value)


@st.composite
def mutated_recipes(draw):
    """(description, recipe mapping): a valid recipe with 1-4 hostile edits."""
    import copy

    data = copy.deepcopy(draw(st.sampled_from(BASES)))
    labels = []
    for label, apply in draw(st.lists(mutation(), min_size=1, max_size=4)):
        apply(data)
        labels.append(label)
    return "; ".join(labels), data


# --- YAML text ----------------------------------------------------------------------------

def alias_bomb(levels: int, width: int, shape: str) -> str:
    """Billion laughs: each anchor refers to the previous one ``width`` times."""
    lines = ["  l0: &l0 [lol]" if shape == "list" else "  l0: &l0 {x: lol}"]
    for i in range(1, levels):
        if shape == "list":
            body = "[" + ", ".join([f"*l{i - 1}"] * width) + "]"
        else:
            body = "{" + ", ".join(f"k{j}: *l{i - 1}" for j in range(width)) + "}"
        lines.append(f"  l{i}: &l{i} {body}")
    return "\n".join(lines)


yaml_keys = st.one_of(st.sampled_from(SCHEMA_PATHS + list(LEAF_KINDS) + ["<<", "? ", "- "]), st.text(max_size=8))


@st.composite
def yaml_lines(draw):
    """Recipe-looking text: random keys at random indents with hostile scalar texts."""
    lines = draw(st.lists(
        st.builds(lambda indent, key, value: f"{' ' * indent}{key}: {value}",
                  st.sampled_from([0, 0, 2, 4, 3]), yaml_keys,
                  st.one_of(st.sampled_from(HOSTILE_SCALAR_TEXT), st.text(max_size=20))),
        min_size=1, max_size=12))
    return "\n".join(lines)


SLOT = "SLOT-7f3a"  # a placeholder value, replaced by raw YAML text after dumping


@st.composite
def spliced_recipe(draw):
    """A recipe's YAML text with raw hostile text as the value of one field, optionally an
    alias bomb that a field refers to, optionally a duplicated key."""
    import copy

    data = copy.deepcopy(draw(st.sampled_from(BASES)))
    set_dotted(data, draw(st.sampled_from(SCHEMA_PATHS + ["zzz"])), SLOT)
    text = yaml.safe_dump(data, sort_keys=False, width=1_000_000)
    fragment = draw(st.one_of(
        st.sampled_from(HOSTILE_SCALAR_TEXT),
        st.text(max_size=30),
        st.builds(lambda d: "[" * d + "]" * d, st.sampled_from([10, 100, 250, 600, 1200])),
        st.builds(lambda d: "{a: " * d + "1" + "}" * d, st.sampled_from([10, 100, 250, 600, 1200])),
    ))
    if draw(st.booleans()):  # a billion-laughs bomb (kept small: the regression test has a big one)
        levels, width = draw(st.integers(2, 6)), draw(st.integers(2, 9))
        shape = draw(st.sampled_from(["list", "dict"]))
        text = f"bombs:\n{alias_bomb(levels, width, shape)}\n{text}"
        fragment = draw(st.sampled_from([f"*l{levels - 1}", f"{{uniform: *l{levels - 1}}}", f"{{grid: *l{levels - 1}}}",
                                         f"{{choice: [*l{levels - 1}]}}", f"[*l{levels - 1}, *l{levels - 1}]"]))
    text = text.replace(SLOT, fragment, 1)
    if draw(st.integers(0, 4)) == 0:
        text += f"\n{draw(st.sampled_from(['name', 'train', 'data', 'zzz']))}: {draw(st.sampled_from(HOSTILE_SCALAR_TEXT))}\n"
    return text


yaml_texts = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    yaml_lines(),
    spliced_recipe(),
)


# --- overrides ----------------------------------------------------------------------------

odd_override_keys = st.one_of(
    st.sampled_from(["", ".", "a..b", "train.", ".train", " train.lr", "train.lr ", "train.lr.grid",
                     "train.lr.uniform", "grid", "name.x", "__class__", "train.__dict__", "0.a", "ñ",
                     "baseline.overrides.train.lr", "results.path.x", "a" * 300]),
    st.text(max_size=12),
)
override_values = st.one_of(
    st.sampled_from(HOSTILE_SCALAR_TEXT),
    st.sampled_from(["{grid: [1, 2]}", "{grid: []}", "{uniform: [2, 1]}", "{choice: [a, b]}", "[1, 2]",
                     "{a: 1}", "=", "==", "a=b", "", " ", "\x00", "[" * 600, "[" * 400 + "]" * 400,
                     "[" * 700 + "]" * 700, "{a: " * 700 + "1" + "}" * 700]),
    st.text(max_size=20),
)
override_items = st.one_of(  # a real key with a hostile value is the likeliest shape
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(SCHEMA_PATHS), override_values),
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(SCHEMA_PATHS), override_values),
    st.builds(lambda k, v: f"{k} = {v}", st.sampled_from(SCHEMA_PATHS), override_values),
    st.builds(lambda k, v: f"{k}={v}", odd_override_keys, override_values),
    st.text(max_size=30),
)


# --- the fuzz tests -----------------------------------------------------------------------

FUZZ = settings(deadline=None, derandomize=True, database=None, print_blob=False,
                suppress_health_check=list(HealthCheck))
# Cases per generator; the acceptance criterion is >= 1,000 in all (asserted below).
N_TEXT, N_MUTATED, N_OVERRIDES = 450, 700, 300


@dataclass
class FuzzRun:
    """Outcomes of one fuzz run: counts per kind, the escaping inputs, the time spent."""

    counts: dict
    escapes: list
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self, show: int = 5) -> str:
        lines = [f"{self.total} cases: {self.counts}"]
        lines += [f"  {detail}\n    input: {case}"[:1500] for detail, case in self.escapes[:show]]
        return "\n".join(lines)


def _describe(generated) -> str:
    if isinstance(generated, tuple):  # (label, data) from mutated_recipes: the label says it
        return str(generated[0])
    try:
        return repr(generated)[:1000]
    except (RecursionError, ValueError):
        return f"<{type(generated).__name__} without a repr>"


def fuzz(strategy, examples: int, call, *, seed: int | None = None) -> FuzzRun:
    """Run ``call(case) -> (thunk, input size)`` on ``examples`` generated cases; record every
    outcome instead of stopping at the first escape, so one run shows how many escape."""
    from hypothesis import seed as fixed_seed

    run = FuzzRun({"valid": 0, "error": 0, "escape": 0}, [])
    config = settings(FUZZ, max_examples=examples, derandomize=seed is None)

    @config
    @given(strategy)
    def case(generated):
        thunk, size = call(generated)
        result = outcome(thunk, size)
        run.counts[result.kind] += 1
        run.seconds += result.seconds
        if result.kind == "escape":
            run.escapes.append((f"{result.detail} ({result.seconds:.2f} s)", _describe(generated)))

    (fixed_seed(seed)(case) if seed is not None else case)()
    return run


def _text_case(text):
    return (lambda: build_template(parse_yaml(text, "fuzz.yaml"), "fuzz.yaml")), len(text)


def _mutated_case(described):
    label, data = described
    return (lambda: build_template(data)), len(label) + 200


def _overrides_case(path: Path):
    def call(overrides):
        return (lambda: load_recipe(path, overrides)), sum(map(len, overrides)) + 2000
    return call


@pytest.mark.slow
def test_fuzz_yaml_text():
    run = fuzz(yaml_texts, N_TEXT, _text_case)
    assert run.total >= N_TEXT, run.summary()
    assert run.counts["error"] > N_TEXT // 2, run.summary()  # junk is mostly junk, or the strategy is broken
    assert not run.escapes, run.summary()


@pytest.mark.slow
def test_fuzz_mutated_recipes():
    run = fuzz(mutated_recipes(), N_MUTATED, _mutated_case)
    assert run.total >= N_MUTATED, run.summary()
    # Some mutations keep a recipe valid (a known registry name, a deleted optional key): both
    # outcomes must be exercised, or the oracle's valid-template checks never run.
    assert run.counts["valid"] >= 10 and run.counts["error"] >= N_MUTATED // 2, run.summary()
    assert not run.escapes, run.summary()


@pytest.mark.slow
def test_fuzz_overrides(tmp_path):
    path = tmp_path / "fuzz.yaml"
    path.write_text(SHIPPED[0].read_text(encoding="utf-8"), encoding="utf-8")
    run = fuzz(st.lists(override_items, min_size=1, max_size=4), N_OVERRIDES, _overrides_case(path))
    assert run.total >= N_OVERRIDES, run.summary()
    assert not run.escapes, run.summary()


def test_fuzz_total_meets_the_acceptance_count():
    assert N_TEXT + N_MUTATED + N_OVERRIDES >= 1000


# --- regression tests: one per bug the fuzzers found (see the reliability issue) -----------

def _expect_clean(call, text_len: int = 1000) -> Outcome:
    result = outcome(call, text_len)
    assert result.kind != "escape", result.detail
    return result


@pytest.mark.parametrize("text", ["name: x\n[1, 2]: 3\n", "? {a: 1}\n: 3\nname: x\n", "name: x\ntrain: {[a]: 1}\n"],
                         ids=["list-key", "map-key", "nested-list-key"])
def test_unhashable_mapping_key_is_a_recipe_error(text):
    # loader._construct_mapping: `key in seen` raises TypeError before PyYAML's own check.
    assert _expect_clean(lambda: build_template(parse_yaml(text, "k.yaml"))).kind == "error"


@pytest.mark.parametrize("scalar", ["2001-02-30", "2001-13-01", "!!float abc", "!!int abc", "!!int _", "!!bool maybe",
                                    "!!timestamp abc", "!!int 0x"])
def test_scalar_that_pyyaml_cannot_construct_is_a_recipe_error(scalar):
    # PyYAML's constructors raise ValueError/KeyError/IndexError/AttributeError, not YAMLError;
    # 2001-02-30 needs no tag at all: the implicit timestamp resolver matches it.
    text = f"name: x\ndescription: {scalar}\n"
    assert _expect_clean(lambda: build_template(parse_yaml(text, "t.yaml"))).kind == "error"


@pytest.mark.parametrize("literal", ["9" * 4301, "-" + "9" * 5000, "0x" + "f" * 3600, "0b" + "1" * 15000])
def test_integer_literal_past_python_digit_limit_is_a_recipe_error(literal):
    # PyYAML's int(value) raises ValueError (sys.get_int_max_str_digits, 4300): not a YAMLError.
    text = f"name: x\ntrain: {{epochs: {literal}}}\n"
    assert _expect_clean(lambda: build_template(parse_yaml(text, "big.yaml")), len(text)).kind == "error"


@pytest.mark.parametrize("data", [{"name": "x", "train": {"epochs": 10**5000}},
                                  {"name": "x", "train": {"lr": {"uniform": [0, 10**5000, 1]}}},
                                  {"name": "x", "train": {"lr": {"grid": []}, "epochs": -(10**5000)}}],
                         ids=["value", "leaf-bounds", "beside-a-bad-leaf"])
def test_integer_past_repr_limit_is_a_recipe_error(data):
    # The messages echo the input with !r; repr(int) past 4300 digits raises ValueError.
    assert _expect_clean(lambda: build_template(data)).kind == "error"


@pytest.mark.parametrize("override", ["train.epochs=" + "9" * 5000, "train.lr=" + "[" * 1200 + "]" * 1200,
                                      "train.lr=" + "{a: " * 1200 + "1" + "}" * 1200],
                         ids=["huge-int", "deep-list", "deep-map"])
def test_hostile_override_value_is_a_recipe_error(tmp_path, override):
    # apply_overrides catches yaml.YAMLError only: ValueError / RecursionError escape.
    path = tmp_path / "r.yaml"
    path.write_text("name: x\n", encoding="utf-8")
    assert _expect_clean(lambda: load_recipe(path, [override]), len(override)).kind == "error"


@pytest.mark.parametrize("shape", ["list", "dict"])
def test_deeply_nested_python_data_is_a_recipe_error(shape):
    # build_template is public API; find_leaves/walk and deepcopy recurse without a guard.
    data = {"name": "x", "train": {"lr": nested(1500, shape)}}
    assert _expect_clean(lambda: build_template(data)).kind == "error"


def test_alias_bomb_of_mappings_finishes_quickly():
    # 9 levels x 9 keys is under 800 bytes of YAML; space.walk visits 9**8 paths (minutes).
    text = "name: x\ntrain:\n" + alias_bomb(9, 9, "dict")
    assert _expect_clean(lambda: build_template(parse_yaml(text, "bomb.yaml")), len(text)).kind == "error"


def test_alias_bomb_does_not_amplify_the_error_message():
    # {uniform: *bomb} echoes the expanded list with !r: 9**7 elements from ~400 bytes.
    text = "bombs:\n" + alias_bomb(8, 9, "list") + "\nname: x\ntrain: {lr: {uniform: *l7}}\n"
    assert _expect_clean(lambda: build_template(parse_yaml(text, "bomb.yaml")), len(text)).kind == "error"


def test_results_path_with_nul_byte_is_rejected():
    # A NUL byte cannot be a local path or a URI; run would crash in Path.resolve().
    assert _expect_clean(lambda: build_template({"name": "x", "results": {"path": "a\x00b"}})).kind == "error"


@pytest.mark.parametrize("data", [
    {"data": {"val_fraction": {"grid": [0.1, 0.5]}, "test_fraction": {"grid": [0.1, 0.5]}}},
    {"model": {"name": {"grid": ["mlp", "cnn2d"]}}, "data": {"name": {"grid": ["digits", "mnist1d"]}}},
    {"train": {"optimizer": {"nesterov": {"grid": [False, True]}, "momentum": {"grid": [0.9, 0.0]}}}},
], ids=["split-fractions", "model-vs-data", "nesterov-momentum"])
def test_every_grid_combination_is_valid_or_rejected(data):
    # Validation substitutes one leaf at a time, so a cross-field rule broken only by a
    # combination of two leaves passes `validate` and fails inside a trial.
    assert _expect_clean(lambda: build_template({"name": "x", **data})).kind == "error"


@pytest.mark.parametrize("path,leaf", [("train.epochs", {"uniform": [1, 5]}), ("train.seed", {"loguniform": [1, 100]}),
                                       ("train.batch_size", {"uniform": [16, 64]})])
def test_float_range_on_an_integer_field_is_rejected(path, leaf):
    # Both ends are ints and validate, but Tune samples floats (2.37 epochs) in every trial.
    data = {"name": "x", "search": {"scheduler": {"name": "none"}}}
    set_dotted(data, path, leaf)
    assert _expect_clean(lambda: build_template(data)).kind == "error"


def test_large_grid_validates_in_linear_time():
    # Each candidate deep-copies the whole recipe (grid included): 4,000 values took ~4 s,
    # 20,000 took ~140 s; a 1 MB recipe holds ~250,000.
    data = {"name": "x", "train": {"lr": {"grid": [0.001 * (i % 100 + 1) for i in range(6000)]}}}
    result = _expect_clean(lambda: build_template(data), 60_000)
    assert result.kind == "valid"
