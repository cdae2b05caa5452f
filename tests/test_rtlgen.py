"""rtlgen: memory files decode back to the artifact's data; the manifest section; the top's text."""

from __future__ import annotations

import numpy as np

from bnnflow import packing, rtlgen
from bnnflow.folding import LayerFolding as F
from bnnflow.testing import random_artifact


def _read_mem(path, count, bits, signed):
    words = [int(line, 16) for line in path.read_text().split()]
    return packing.int_to_fields(words, count, bits, signed)


def test_memory_files_round_trip(tmp_path):
    a = random_artifact(tmp_path / "a", seed=3, input_features=100, hidden=(48,), classes=10,
                        folding=[F(4, 32), F(5, 16)], n_vectors=2, generate=("rtl",))
    for k, layer in enumerate(a.layers):
        w = _read_mem(a.root / "rtl" / rtlgen.weight_file(k), layer.pe * layer.simd, 1, False)
        assert w.shape == (layer.nf * layer.sf, layer.pe * layer.simd)
        # word at address nf*SF+sf: PE p at bits [p*SIMD, (p+1)*SIMD)
        lanes = w.reshape(layer.nf * layer.sf, layer.pe, layer.simd).transpose(1, 0, 2)
        np.testing.assert_array_equal(lanes, a.weight_lanes(k))
        folded = a.folded_thresholds(k)
        path = a.root / "rtl" / rtlgen.threshold_file(k)
        if folded is None:
            assert not path.exists()
        else:
            t = _read_mem(path, layer.pe, layer.threshold_bits, True)
            np.testing.assert_array_equal(t.T, folded)


def test_manifest_section_checksummed(tmp_path):
    a = random_artifact(tmp_path / "a", seed=1, input_features=20, hidden=(8,), classes=3, n_vectors=2,
                        generate=("rtl",))
    section = a.manifest["rtl"]
    assert section["top"] == "rtl/bnnflow_top.v"
    paths = [section["top"]] + section["sources"] + section["memories"]
    for rel in paths:
        assert (a.root / rel).is_file()
        assert rel in a.manifest["files"], rel
    assert sorted(section["memories"]) == ["rtl/L0_thresholds.mem", "rtl/L0_weights.mem", "rtl/L1_weights.mem"]
    assert section["cycles_per_image"] == max(l.nf * l.sf for l in a.layers)


def test_top_depends_on_shape_only(tmp_path):
    """Same shapes and folding -> same top text (so simulator builds are shared)."""
    kw = dict(input_features=40, hidden=(16,), classes=4, n_vectors=2, generate=("rtl",))
    a = random_artifact(tmp_path / "a", seed=1, **kw)
    b = random_artifact(tmp_path / "b", seed=2, **kw)
    assert rtlgen.top_text(a) == rtlgen.top_text(b)
    c = random_artifact(tmp_path / "c", seed=1, folding=[F(2, 8), F(4, 16)], **kw)
    assert rtlgen.top_text(a) != rtlgen.top_text(c)
