"""orchestrator: accuracy-versus-size frontiers of compressed models, swept with Ray Tune."""

__version__ = "0.1.0"
