"""Sampling blocks: identify_changes and identify_outliers, with the reference's names, fields, defaults and
outputs (``sampling/<block>/v1.py``).

Both read an embedding (a feature vector) per frame and keep statistics of the ones before it, per video
source (worker: ``blocks/sampling.py``). No embedding model runs here yet: any step output of the embedding
kind, or of any kind (``property_definition``, ``expression``, a workflow parameter), may feed them.
"""

from collections.abc import Callable
from typing import Any

from services.core.workflows import kinds
from services.core.workflows.blocks import BlockSpec, Field, is_int, is_unit, register_literals

EMA = "Exponential Moving Average (EMA)"
SMA = "Simple Moving Average (SMA)"
SLIDING_WINDOW = "Sliding Window"
STRATEGIES = (EMA, SMA, SLIDING_WINDOW)

_LITERALS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "sampling_optional_unit": (lambda v: v is None or is_unit(v), "a number between 0 and 1, or null"),
    # null: no bound (every embedding seen so far; the reference's manifest offers null and then fails on it)
    "sampling_window": (lambda v: v is None or (is_int(v) and v > 0), "a positive integer, or null (no bound)"),
}
register_literals(_LITERALS)


def _embedding() -> Field:
    return Field("embedding", kinds=(kinds.EMBEDDING,), literal=None)


def _threshold(default: float) -> Field:
    return Field("threshold_percentile", kinds=(kinds.FLOAT_ZERO_TO_ONE,), literal="unit", default=default)


def _warmup() -> Field:
    return Field("warmup", kinds=(kinds.INTEGER,), literal="int", default=3)


def _window(default: int) -> Field:
    return Field("window_size", kinds=(kinds.INTEGER,), literal="sampling_window", default=default)


BLOCKS: tuple[BlockSpec, ...] = (
    BlockSpec(  # how far each embedding is from the running average, against how far they usually are
        names=("roboflow_core/identify_changes@v1",),
        family="sampling",
        fields=(
            Field("strategy", literal="str", default=EMA, choices=STRATEGIES),
            _embedding(),
            _threshold(0.2),
            _warmup(),
            Field("smoothing_factor", kinds=(kinds.FLOAT_ZERO_TO_ONE,), literal="sampling_optional_unit",
                  default=0.1),
            _window(10),
        ),
        outputs={"is_outlier": (kinds.BOOLEAN,), "percentile": (kinds.FLOAT_ZERO_TO_ONE,),
                 "z_score": (kinds.FLOAT,), "average": (kinds.EMBEDDING,), "std": (kinds.EMBEDDING,),
                 "warming_up": (kinds.BOOLEAN,)},
    ),
    BlockSpec(  # where each embedding ranks among the recent ones by its alignment with their mean direction
        names=("roboflow_core/identify_outliers@v1",),
        family="sampling",
        fields=(_embedding(), _threshold(0.05), _warmup(), _window(32)),
        outputs={"is_outlier": (kinds.BOOLEAN,), "percentile": (kinds.FLOAT_ZERO_TO_ONE,),
                 "warming_up": (kinds.BOOLEAN,)},
    ),
)
