"""Sampling blocks, by canonical name: identify_changes@v1 and identify_outliers@v1.

Both take one embedding (a feature vector: a list of numbers) per frame, scaled to unit length (a zero vector is
left as it is), and keep statistics of the ones before it. A block is built per video source, so each source has
its own (the reference keeps them in the block). An embedding whose length differs from the ones before it fails
the step on that frame and leaves the statistics as they were.

identify_changes@v1 (the reference's statistics, quirks included): the cosine similarity ``cs`` of the embedding to
the running average of the ones before it is compared with the running average and deviation of the earlier
similarities: ``z = (cs - avg) / std`` (taken after ``cs`` joined them; 0 while their deviation is 0) and
``percentile = 1 - Φ(z)``, so a frame much less like the average than usual is near 1. It is an outlier when
``percentile <= threshold / 2`` or ``>= 1 - threshold / 2``, never while fewer than ``warmup`` embeddings came
before it. The running statistics, for the embeddings (per dimension) and for the similarities alike, follow
``strategy``: an exponential moving average (``smoothing_factor`` a; the variance ``(1 - a)·var + a·(x - avg)²``
with the updated average), Welford's running mean and sample variance, or the mean and population deviation of
the last ``window_size`` values. As the reference, the first value of each only sets the average (it joins no
window), and the similarities' running mean weighs a new value by ``1 / (embeddings seen + 1)``, one more than the
similarities seen. Unlike the reference (NaN from then on), a zero vector's cosine similarity is 0.

identify_outliers@v1: the last ``window_size`` unit embeddings, this one included; once ``warmup`` of them were
seen, their mean direction ``mu`` (their sum, scaled to unit length; this embedding itself when fewer than 2 or
when they cancel out) and each one's alignment ``t = e · mu``. The percentile is the fraction of the window whose
alignment is below this embedding's; it is an outlier below ``threshold`` or above ``1 - threshold``.

``window_size`` null keeps every embedding (the reference's manifest offers null and then fails on it); a smaller
``window_size`` from a selector drops the oldest at once (the reference drops one per frame).
"""

import math
from collections import deque
from typing import Any

import numpy as np

from services.core.workflows.catalogue.sampling import EMA, SLIDING_WINDOW, SMA
from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment, BlockFactory


def unit_embedding(value: Any, block: str, length: int | None) -> np.ndarray:
    """``value`` as a float vector scaled to unit length (a zero vector as it is); a clear error otherwise."""
    try:
        vector = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{block}: the embedding must be a list of numbers, got {type(value).__name__}") from None
    if vector.ndim != 1 or not len(vector) or not np.isfinite(vector).all():
        raise ValueError(f"{block}: the embedding must be a non-empty list of finite numbers, got shape "
                         f"{vector.shape}")
    if length is not None and len(vector) != length:
        raise ValueError(f"{block}: the embedding has {len(vector)} values, the earlier ones {length}")
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm else vector


def _window_bound(value: Any, block: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{block}: window_size must be a positive integer or null, got {value!r}")
    return int(value)


def _trimmed(window: deque[Any], bound: int | None) -> None:
    while bound is not None and len(window) > bound:
        window.popleft()


class RunningStatistic:
    """A running average and deviation of a number or a vector, by one of identify_changes' strategies."""

    def __init__(self) -> None:
        self.average: Any = None
        self.std: Any = None
        self._var: Any = None  # EMA's
        self._m2: Any = None  # Welford's
        self._window: deque[Any] = deque()

    def add(self, value: Any, strategy: str, alpha: float | None, window: int | None, count: int) -> None:
        """Add ``value``; ``count``: the weight of the running mean's new value is ``1 / count`` (SMA)."""
        if self.average is None:  # the first value sets the average only
            self.average = value
            self.std = self._var = self._m2 = value * 0.0
            return
        if strategy == EMA:
            if alpha is None:
                raise ValueError("identify_changes: the exponential moving average needs a smoothing_factor")
            self.average = (1 - alpha) * self.average + alpha * value
            self._var = (1 - alpha) * self._var + alpha * (value - self.average) ** 2
            self.std = np.sqrt(self._var)
        elif strategy == SMA:
            delta = value - self.average
            self.average = self.average + delta / count
            self._m2 = self._m2 + delta * (value - self.average)
            self.std = np.sqrt(self._m2 / (count - 1))
        elif strategy == SLIDING_WINDOW:
            self._window.append(value)
            _trimmed(self._window, window)
            values = np.asarray(self._window)
            self.average = values.mean(axis=0)
            self.std = values.std(axis=0)
        else:
            raise ValueError(f"identify_changes: unknown strategy {strategy!r}")


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    norms = float(np.linalg.norm(a)) * float(np.linalg.norm(b))
    return float(np.dot(a, b)) / norms if norms else 0.0


class IdentifyChanges:
    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self._embeddings = RunningStatistic()
        self._similarities = RunningStatistic()
        self._samples = 0

    def run(self, embedding: Any, strategy: str = EMA, threshold_percentile: float = 0.2, warmup: int = 3,
            smoothing_factor: float | None = 0.1, window_size: int | None = 10) -> dict[str, Any]:
        previous = self._embeddings.average
        vector = unit_embedding(embedding, "identify_changes", None if previous is None else len(previous))
        window = _window_bound(window_size, "identify_changes")
        alpha = None if smoothing_factor is None else float(smoothing_factor)
        if strategy == EMA and alpha is None:  # checked before any statistic changes
            raise ValueError("identify_changes: the exponential moving average needs a smoothing_factor")
        z_score, percentile = 0.0, 0.5
        if previous is not None:
            similarity = cosine_similarity(vector, previous)
            self._similarities.add(similarity, strategy, alpha, window, self._samples + 1)
            deviation = float(self._similarities.std)
            if deviation != 0:
                z_score = (similarity - float(self._similarities.average)) / deviation
                percentile = 1 - 0.5 * (1 + math.erf(z_score / math.sqrt(2)))
        warming_up = self._samples < warmup
        is_outlier = not warming_up and (percentile <= threshold_percentile / 2
                                         or percentile >= 1 - threshold_percentile / 2)
        self._embeddings.add(vector, strategy, alpha, window, self._samples + 1)
        self._samples += 1
        return {"is_outlier": bool(is_outlier), "percentile": float(percentile), "z_score": float(z_score),
                "average": np.asarray(self._embeddings.average).tolist(),
                "std": np.asarray(self._embeddings.std).tolist(), "warming_up": warming_up}


class IdentifyOutliers:
    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self._window: deque[np.ndarray] = deque()
        self._samples = 0

    def run(self, embedding: Any, threshold_percentile: float = 0.05, warmup: int = 3,
            window_size: int | None = 32) -> dict[str, Any]:
        length = len(self._window[-1]) if self._window else None
        vector = unit_embedding(embedding, "identify_outliers", length)
        bound = _window_bound(window_size, "identify_outliers")
        self._samples += 1
        warming_up = self._samples < warmup
        self._window.append(vector)
        _trimmed(self._window, bound)
        if warming_up:
            return {"is_outlier": False, "percentile": 0.5, "warming_up": True}
        embeddings = np.asarray(self._window)
        total = embeddings.sum(axis=0)
        resultant = float(np.linalg.norm(total))
        mean_direction = total / resultant if len(embeddings) >= 2 and resultant else vector
        alignments = embeddings @ mean_direction
        percentile = float(np.count_nonzero(alignments < alignments[-1])) / len(alignments)
        is_outlier = percentile < threshold_percentile or percentile > 1 - threshold_percentile
        return {"is_outlier": bool(is_outlier), "percentile": percentile, "warming_up": False}


BLOCKS: dict[str, BlockFactory] = {
    "roboflow_core/identify_changes@v1": IdentifyChanges,
    "roboflow_core/identify_outliers@v1": IdentifyOutliers,
}
