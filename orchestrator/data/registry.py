"""Dataset registry: name → (features, labels) arrays, then one split function for all."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the recipe schema imports compression, which imports the models
    from orchestrator.recipe.schema import DataConfig


@dataclass(frozen=True)
class Splits:
    """Train/val/test tensors. ``x`` keeps the sample shape (e.g. (1, 8, 8) for digits)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train_y), "val": len(self.val_y), "test": len(self.test_y)}


def _digits(cfg: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    return x, bunch.target.astype(np.int64)


def _mnist1d(cfg: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    # get_dataset() would try to download a pickle; make_dataset() generates the same kind of
    # data offline and deterministically from the default arguments (seed 42).
    with contextlib.redirect_stdout(io.StringIO()):
        from mnist1d.data import get_dataset_args, make_dataset

        data = make_dataset(get_dataset_args())
    x = np.concatenate([data["x"], data["x_test"]]).astype(np.float32)
    y = np.concatenate([data["y"], data["y_test"]]).astype(np.int64)
    return x.reshape(len(x), 1, -1), y


def _synthetic(cfg: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian clusters, one per class, in ``num_features`` dimensions: learnable but not
    trivially separable (centres at distance ~2.5 sigma)."""
    rng = np.random.default_rng(cfg.seed)
    centres = rng.normal(0.0, 1.0, size=(cfg.num_classes, cfg.num_features)) * 0.6
    # Balanced classes, so every class has members in every stratified split.
    y = rng.permutation(np.arange(cfg.num_samples) % cfg.num_classes)
    x = centres[y] + rng.normal(0.0, 1.0, size=(cfg.num_samples, cfg.num_features))
    return x.astype(np.float32), y.astype(np.int64)


DATASETS: dict[str, Callable[[DataConfig], tuple[np.ndarray, np.ndarray]]] = {
    "digits": _digits,
    "mnist1d": _mnist1d,
    "synthetic": _synthetic,
}


def load_splits(cfg: DataConfig) -> Splits:
    """Load a registered dataset and split it (stratified, seeded by ``cfg.seed``)."""
    # Imported here, not at the top: every Ray Train worker imports this module (it defines
    # Splits) but never splits data, and sklearn costs ~1.2 s of CPU per process.
    from sklearn.model_selection import train_test_split

    x, y = DATASETS[cfg.name](cfg)
    idx = np.arange(len(y))
    holdout = cfg.val_fraction + cfg.test_fraction
    train_idx, rest_idx = train_test_split(idx, test_size=holdout, stratify=y, random_state=cfg.seed)
    val_idx, test_idx = train_test_split(
        rest_idx, test_size=cfg.test_fraction / holdout, stratify=y[rest_idx], random_state=cfg.seed
    )

    def take(rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(x[rows].copy()), torch.from_numpy(y[rows].copy())

    (trx, tr_y), (vx, vy), (tx, ty) = take(train_idx), take(val_idx), take(test_idx)
    num_classes = cfg.num_classes if cfg.name == "synthetic" else int(y.max()) + 1
    return Splits(trx, tr_y, vx, vy, tx, ty, num_classes=num_classes)
