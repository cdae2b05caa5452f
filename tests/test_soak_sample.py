"""A small sample of bench/soak.py's randomized campaign in CI (the full campaign: docs/RELIABILITY.md)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from bnnflow.sim import toolchain

SOAK = Path(__file__).resolve().parent.parent / "bench" / "soak.py"


@pytest.fixture(scope="module")
def soak():
    spec = importlib.util.spec_from_file_location("bnnflow_bench_soak", SOAK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_configurations_are_reproducible_and_legal(soak):
    """A seed names one configuration; every drawn folding is one both engines can build."""
    from bnnflow import hlsgen

    assert soak.draw_config(1017) == soak.draw_config(1017)
    assert soak.draw_config(1017) != soak.draw_config(1018)
    wide = 0
    for seed in range(200):
        cfg = soak.draw_config(seed)
        sizes = (cfg.input_features, *cfg.hidden, cfg.classes)
        for k, ((mw, mh), (pe, simd)) in enumerate(zip(zip(sizes, sizes[1:]), cfg.folding)):
            assert mh % pe == 0 and 1 <= simd <= mw
            assert simd * (cfg.input_bits if k == 0 else 1) <= hlsgen.MAX_WORD_BITS
            assert (mh // pe) * -(-mw // simd) <= 8 * (16 if k == len(cfg.folding) - 1 else 8)
            wide += simd > 64
    assert wide >= 20, "the campaign must exercise words over 64 bits"


@pytest.mark.rtl
@pytest.mark.hls
# two random designs on both simulators and in C-simulation (20-27 s each), under `slow`; in CI the randomized
# property tests of tests/test_levels_v3.py compare every level on random v3 nets
@pytest.mark.slow
@pytest.mark.parametrize("seed", [7, 2024])
def test_soak_sample(soak, seed):
    for sim in ("icarus", "verilator"):
        toolchain.pytest_require(sim)
    result = soak.run_config(seed, ("rtl", "hls"), ("icarus", "verilator"), rtl_vectors=24, hls_vectors=60)
    assert not result.errors, result.errors
    assert result.vectors == {"rtl-icarus": 24, "rtl-verilator": 24, "hls": 60}
    assert result.mismatches == {"rtl-icarus": 0, "rtl-verilator": 0, "hls": 0}, result.network


def test_soak_cli_rejects_bad_options(soak, capsys):
    with pytest.raises(SystemExit):
        soak.main(["--configs", "0"])
    assert "--configs must be a positive integer, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        soak.main(["--sims", "modelsim"])
    assert "--sims icarus,verilator" in capsys.readouterr().err
