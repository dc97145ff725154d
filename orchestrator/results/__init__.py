"""Results layer: read sweeps' Parquet, Pareto fronts, hypervolume, comparisons, reports.

No Ray here: everything is plain numpy/pandas/pyarrow (matplotlib for plots) and runs in
any process. The CLI subcommands live in ``orchestrator.results.cli`` (``register``).
"""

from orchestrator.results.compare import Comparison, Gain, SweepSummary, compare_sweeps
from orchestrator.results.frontier import aggregate_replicates, sweep_frontier
from orchestrator.results.hypervolume import default_reference, hypervolume
from orchestrator.results.objectives import (
    DEFAULT_OBJECTIVES,
    Objective,
    ResultsInputError,
    objective_matrix,
    parse_objectives,
)
from orchestrator.results.pareto import eligible, pareto_front, pareto_mask
from orchestrator.results.plots import plot_comparison
from orchestrator.results.reading import list_sweeps, read_epochs, read_results
from orchestrator.results.report import write_report
from orchestrator.results.stats import mean_ci, t_quantile

__all__ = [
    "DEFAULT_OBJECTIVES",
    "Comparison",
    "Gain",
    "Objective",
    "ResultsInputError",
    "SweepSummary",
    "aggregate_replicates",
    "compare_sweeps",
    "default_reference",
    "eligible",
    "hypervolume",
    "list_sweeps",
    "mean_ci",
    "objective_matrix",
    "parse_objectives",
    "pareto_front",
    "pareto_mask",
    "plot_comparison",
    "read_epochs",
    "read_results",
    "sweep_frontier",
    "t_quantile",
    "write_report",
]
