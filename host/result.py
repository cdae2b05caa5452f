"""What a backend hands back for one batch, and the timing the driver records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class BackendResult:
    """Scores of one batch plus whatever the backend measured besides the total time.

    ``details`` holds backend extras. The board backends (``board``,
    ``board-sim``) put there ``transfers`` (DMA runs the batch took) and the
    batch's ``pack_seconds``, ``transfer_seconds`` and ``unpack_seconds``
    (``BoardBackend.SECONDS``), which ``BnnDriver.throughput_test`` reads to
    separate the host's packing from the accelerator.
    """

    scores: np.ndarray                          # (N, num_classes) int64
    cycles_per_image: float | None = None       # measured clock cycles per image (rtl)
    model_cycles_per_image: int | None = None   # the NF*SF model of the slowest layer (rtl)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchTiming:
    """Timing of the last batch a driver ran.

    ``seconds`` is the wall-clock time of the backend's run of the batch:
    packing, transfers (board), simulation (rtl) or computation (golden),
    unpacking. Input validation and the argmax are outside it.
    """

    backend: str
    images: int
    seconds: float
    cycles_per_image: float | None = None
    model_cycles_per_image: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    @property
    def seconds_per_image(self) -> float:
        return self.seconds / self.images if self.images else 0.0

    def __str__(self) -> str:
        text = f"{self.backend}: {self.images} images in {self.seconds:.4f} s ({self.images_per_second:,.0f} images/s)"
        if self.cycles_per_image is not None:
            text += f", {self.cycles_per_image:g} cycles/image"
            if self.model_cycles_per_image is not None:
                text += f" (NF*SF model {self.model_cycles_per_image})"
        return text
