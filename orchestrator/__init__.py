"""orchestrator: accuracy-versus-size frontiers of compressed models, swept with Ray Tune.

Public API::

    template = load_recipe("recipes/quickstart.yaml", ["train.epochs=3"])
    outcome = run_sweep(template)                 # starts an embedded Ray unless one runs
    trials = read_results("results")              # every sweep under a results root
    front = pareto_front(trials)                  # val_accuracy max, size_bytes min
"""

__version__ = "0.1.0"

from orchestrator.recipe import load_recipe  # noqa: E402
from orchestrator.results import pareto_front, read_results  # noqa: E402


def run_sweep(template, **kwargs):
    """Run a recipe's baseline and sweep (see ``orchestrator.sweep.runner.run_sweep``).
    Imported lazily: Ray and Tune take seconds to import and validation needs neither."""
    from orchestrator.sweep.runner import run_sweep as _run_sweep

    return _run_sweep(template, **kwargs)


__all__ = ["__version__", "load_recipe", "pareto_front", "read_results", "run_sweep"]
