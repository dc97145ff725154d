"""The typed recipe: one pydantic model per section of the YAML file.

Every model forbids unknown keys and NaN/inf, so a typo or a nonsense value is an error that
names its field. Search-space leaves never reach these models: ``loader.py`` validates the
recipe once per candidate value of each leaf, and a trial's recipe is fully concrete.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from orchestrator.compress.config import CompressionConfig

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# Counts are strict: YAML's `yes`/`true` is not 1 epoch.
PositiveInt = Annotated[int, Field(gt=0, strict=True)]
# numpy/sklearn seeds are 32-bit unsigned; larger or negative seeds fail deep inside a trial.
Seed = Annotated[int, Field(ge=0, lt=2**32, strict=True)]
PositiveFloat = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(gt=0, lt=1)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


# --- data -------------------------------------------------------------------------------

class DataConfig(Section):
    """Which dataset, and how it is split. Splits are stratified and seeded."""

    name: Literal["digits", "mnist1d", "synthetic"] = "digits"
    val_fraction: Fraction = 0.15
    test_fraction: Fraction = 0.2
    seed: Seed = 0
    # synthetic only: a seeded Gaussian-cluster classification task
    num_samples: Annotated[int, Field(ge=100, le=10_000_000, strict=True)] = 2000
    num_features: PositiveInt = 32
    num_classes: Annotated[int, Field(ge=2, le=1000, strict=True)] = 4

    @model_validator(mode="after")
    def _synthetic_classes_fit_the_splits(self):
        smallest = min(self.val_fraction, self.test_fraction) * self.num_samples
        if self.name == "synthetic" and smallest < 2 * self.num_classes:
            raise ValueError(
                f"data.num_samples={self.num_samples} is too small for {self.num_classes} classes: the "
                f"smallest split would hold {smallest:.0f} rows, and stratified splits need 2 per class"
            )
        return self

    @model_validator(mode="after")
    def _splits_leave_training_data(self):
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError(
                f"val_fraction + test_fraction must be < 0.9 to leave training data, got "
                f"{self.val_fraction} + {self.test_fraction}"
            )
        return self


# --- model ------------------------------------------------------------------------------

class ModelConfig(Section):
    """A registered architecture, built for the dataset's input shape and class count."""

    name: Literal["mlp", "cnn1d", "cnn2d"] = "mlp"
    hidden: list[PositiveInt] = Field(default_factory=lambda: [256, 256], max_length=16)
    channels: list[PositiveInt] = Field(default_factory=lambda: [32, 64], min_length=1, max_length=8)
    kernel_size: Annotated[int, Field(ge=1, le=15)] = 3
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0


# --- training ---------------------------------------------------------------------------

class OptimizerConfig(Section):
    name: Literal["sgd", "adam"] = "sgd"
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    nesterov: bool = False
    weight_decay: Annotated[float, Field(ge=0, le=1)] = 0.0

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self):
        if self.name == "sgd" and self.nesterov and self.momentum == 0:
            raise ValueError("nesterov: true needs momentum > 0")
        return self


class LRScheduleConfig(Section):
    """η as a pure function of training progress (see train/schedules.py)."""

    name: Literal["constant", "exponential", "step", "cosine"] = "exponential"
    decay: Annotated[float, Field(gt=0, le=1)] = 0.95  # exponential: η_t = η0·decay^t (t in epochs)
    step_epochs: PositiveInt = 10  # step: multiply by gamma every step_epochs
    gamma: Annotated[float, Field(gt=0, le=1)] = 0.1
    min_lr_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.0  # cosine floor, as a fraction of η0
    warmup_epochs: Annotated[float, Field(ge=0)] = 0.0  # linear warmup from 0, before the schedule


class TrainConfig(Section):
    epochs: Annotated[int, Field(gt=0, le=10_000, strict=True)] = 10
    batch_size: Annotated[int, Field(gt=0, le=65_536, strict=True)] = 64
    lr: Annotated[float, Field(gt=0, le=10)] = 0.05
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    lr_schedule: LRScheduleConfig = Field(default_factory=LRScheduleConfig)
    seed: Seed = 0
    # "baseline": start each sweep trial from the dense baseline's weights (fine-tuning, as
    # compression recipes do); "scratch": from a fresh seeded initialisation.
    init: Literal["scratch", "baseline"] = "scratch"
    threads: Annotated[int, Field(ge=1, le=256)] = 1  # torch intra-op threads per worker
    # Save the whole training state every N epochs (0: never): a trial whose worker or node
    # dies, or a sweep resumed with --resume, continues from there instead of from scratch.
    checkpoint_every: Annotated[int, Field(ge=0, le=10_000, strict=True)] = 1


class ParallelConfig(Section):
    """How a trial's training is spread over ``workers`` Ray Train workers: ``ddp`` (data
    parallel, a model copy per worker), ``fsdp`` (data parallel, parameters sharded with
    FSDP2), ``pipeline`` (the model's layers split into one stage per worker, microbatched
    with the GPipe or 1F1B schedule)."""

    strategy: Literal["ddp", "fsdp", "pipeline"] = "ddp"
    workers: Annotated[int, Field(ge=1, le=1024, strict=True)] = 1
    microbatches: Annotated[int, Field(ge=1, le=1024, strict=True)] = 4  # pipeline only
    schedule: Literal["gpipe", "1f1b"] = "gpipe"  # pipeline only
    cpus_per_worker: Annotated[float, Field(gt=0, le=256)] = 1.0
    gpus_per_worker: Annotated[float, Field(ge=0, le=16)] = 0.0
    use_gpu: bool = False

    @model_validator(mode="after")
    def _gpu_flags_agree(self):
        if self.use_gpu and self.gpus_per_worker == 0:
            raise ValueError("use_gpu: true needs gpus_per_worker > 0")
        if self.gpus_per_worker > 0 and not self.use_gpu:
            raise ValueError("gpus_per_worker > 0 needs use_gpu: true")
        return self


class BaselineConfig(Section):
    """The dense run trained once before the sweep: the reference row of the results and
    the distillation teacher. It trains the recipe without compression; a swept value takes
    its first candidate unless ``overrides`` sets it (``{train.lr: 0.1}``)."""

    enabled: bool = True
    epochs: PositiveInt | None = None  # default: train.epochs
    overrides: dict[Annotated[str, Field(pattern=r"^(data|model|train|parallel)(\.[A-Za-z_][A-Za-z0-9_]*)+$")], Any] = Field(default_factory=dict)


# --- search -----------------------------------------------------------------------------

class AshaConfig(Section):
    name: Literal["asha"]
    grace_period: PositiveInt = 1
    reduction_factor: Annotated[float, Field(gt=1, le=100)] = 2.0
    brackets: Annotated[int, Field(ge=1, le=8)] = 1


class MedianConfig(Section):
    name: Literal["median"]
    grace_period: PositiveInt = 1
    min_samples_required: PositiveInt = 3


class NoSchedulerConfig(Section):
    name: Literal["none"]


SchedulerConfig = Annotated[Union[AshaConfig, MedianConfig, NoSchedulerConfig], Field(discriminator="name")]

METRICS = ("val_accuracy", "val_loss", "train_loss", "test_accuracy", "size_bytes")


class SearchConfig(Section):
    num_samples: Annotated[int, Field(ge=1, le=100_000, strict=True)] = 1
    scheduler: SchedulerConfig = Field(default_factory=lambda: AshaConfig(name="asha"))
    metric: Literal[METRICS] = "val_accuracy"
    mode: Literal["max", "min"] = "max"
    # None: derived by the resource planner from what the Ray cluster offers.
    max_concurrent_trials: Annotated[int, Field(ge=1, le=10_000)] | None = None
    algorithm: Literal["random"] = "random"
    retries: Annotated[int, Field(ge=0, le=100, strict=True)] = 2  # restarts of a failed trial, from its checkpoint
    seed: Seed | None = 0  # seeds the sampling of choice/uniform/... leaves
    # Seed replicates: every configuration is trained with train.seed, train.seed + 1, ...;
    # frontiers and comparisons then use per-configuration means with confidence intervals.
    seeds: Annotated[int, Field(ge=1, le=100, strict=True)] = 1


class ResultsConfig(Section):
    path: str = "results"  # a local directory or a URI that pyarrow understands (s3://...)

    @field_validator("path")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("results.path must not be empty")
        if any(ord(ch) < 32 for ch in value):
            raise ValueError("results.path must not contain control characters (NUL, newline, ...)")
        if len(value) > 1024:
            raise ValueError(f"results.path is {len(value)} characters long; at most 1024 are allowed")
        return value


class Recipe(Section):
    """A whole experiment: what to train, how to compress it, what to sweep, where results go."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    description: str = ""
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    parallel: ParallelConfig = Field(default_factory=ParallelConfig)
    baseline: BaselineConfig = Field(default_factory=BaselineConfig)
    compression: CompressionConfig = Field(default_factory=CompressionConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    results: ResultsConfig = Field(default_factory=ResultsConfig)

    @model_validator(mode="after")
    def _cross_section_rules(self):
        sched = self.search.scheduler
        if sched.name in ("asha", "median") and sched.grace_period > self.train.epochs:
            raise ValueError(
                f"search.scheduler.grace_period ({sched.grace_period}) must be <= train.epochs "
                f"({self.train.epochs}), or the scheduler can never stop a trial"
            )
        if self.train.init == "baseline" and not self.baseline.enabled:
            raise ValueError("train.init: baseline needs baseline.enabled: true")
        if self.train.init == "baseline" and any(k.startswith("model.") for k in self.baseline.overrides):
            raise ValueError("train.init: baseline starts trials from the baseline's weights, so "
                             "baseline.overrides cannot change model.* (use train.init: scratch for a "
                             "smaller student distilled from a larger baseline)")
        if self.compression.distillation is not None and not self.baseline.enabled:
            raise ValueError("compression.distillation uses the dense baseline as its teacher: "
                             "it needs baseline.enabled: true")
        self._check_strategy()
        pruning = self.compression.pruning
        if pruning is not None:
            if pruning.start_epoch >= self.train.epochs:
                raise ValueError(f"compression.pruning.start_epoch ({pruning.start_epoch}) must be < "
                                 f"train.epochs ({self.train.epochs})")
            if pruning.end_epoch is not None and pruning.end_epoch > self.train.epochs:
                raise ValueError(f"compression.pruning.end_epoch ({pruning.end_epoch}) must be <= "
                                 f"train.epochs ({self.train.epochs})")
        if self.model.name in ("cnn1d", "cnn2d") and self.data.name == "synthetic":
            raise ValueError(f"model.name {self.model.name!r} needs spatial input; data.name 'synthetic' is flat (use mlp)")
        if self.model.name == "cnn2d" and self.data.name == "mnist1d":
            raise ValueError("model.name 'cnn2d' needs 2-D input; data.name 'mnist1d' is 1-D (use cnn1d or mlp)")
        if self.model.name == "cnn1d" and self.data.name == "digits":
            raise ValueError("model.name 'cnn1d' needs 1-D input; data.name 'digits' is 8x8 images (use cnn2d or mlp)")
        return self

    def _check_strategy(self) -> None:
        par, c = self.parallel, self.compression
        if par.workers == 1:
            return
        if par.strategy == "fsdp" and c.quantization is not None and c.quantization.activations:
            raise ValueError("compression.quantization.activations is not available with parallel.strategy 'fsdp': "
                             "each worker would observe its own activation ranges from its share of the batch; use "
                             "parallel.strategy 'ddp' (ranges follow rank 0) or quantize weights only")
        if par.strategy == "pipeline":
            if any(section is not None for section in (c.pruning, c.quantization, c.distillation)):
                raise ValueError("parallel.strategy 'pipeline' trains dense models only: its loss runs per "
                                 "microbatch on the last stage, where masks, quantizers and teacher logits are not "
                                 "available; use 'ddp' or 'fsdp' for compression")
            if weight_layers(self.model) < par.workers:
                raise ValueError(f"parallel.strategy 'pipeline' needs at least one Linear/Conv layer per worker: "
                                 f"model has {weight_layers(self.model)}, parallel.workers is {par.workers}")
            if self.train.batch_size % par.microbatches:
                raise ValueError(f"parallel.strategy 'pipeline' needs train.batch_size ({self.train.batch_size}) "
                                 f"divisible by parallel.microbatches ({par.microbatches})")
            if par.schedule == "1f1b" and par.microbatches < par.workers:
                raise ValueError(f"parallel.schedule '1f1b' needs parallel.microbatches ({par.microbatches}) >= "
                                 f"parallel.workers ({par.workers})")


SECTION_NAMES = tuple(Recipe.model_fields)


def weight_layers(model: ModelConfig) -> int:
    """Linear/Conv layers of a registered model: the units a pipeline splits into stages."""
    return len(model.hidden) + 1 + (len(model.channels) if model.name != "mlp" else 0)
