"""The ``golden`` backend: the bit-exact integer model, in numpy, on the host."""

from __future__ import annotations

import numpy as np

from bnnflow import artifact as art
from bnnflow.golden import GoldenModel

from .result import BackendResult


class GoldenBackend:
    """Scores from :class:`bnnflow.golden.GoldenModel` (what every level must equal)."""

    name = "golden"
    OPTIONS: tuple[str, ...] = ()

    def __init__(self, artifact: art.Artifact):
        self.artifact = artifact
        self.model = GoldenModel(artifact)

    def load(self, artifact: art.Artifact) -> dict:
        """Compute with ``artifact``'s parameters from now on (``BnnDriver.load`` checked its signature)."""
        self.artifact = artifact
        self.model = GoldenModel(artifact)
        return {}

    def run(self, images: np.ndarray) -> BackendResult:
        return BackendResult(scores=self.model.scores(images))

    def close(self) -> None:
        pass
