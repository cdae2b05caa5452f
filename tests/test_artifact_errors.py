"""Bad artifacts and bad folding are rejected with errors that name the file or field."""

import json
import shutil

import numpy as np
import pytest

from bnnflow import artifact as art
from bnnflow.folding import FoldingError, LayerFolding, load_folding, validate
from bnnflow.golden import GoldenModel
from bnnflow.testing import random_artifact


@pytest.fixture
def good(tmp_path):
    random_artifact(tmp_path / "good", seed=5, generate=())
    return tmp_path / "good"


def edit_manifest(root, change):
    path = root / art.MANIFEST
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_good_artifact_loads(good):
    a = art.load(good)
    assert [l.kind for l in a.layers] == [art.INT_THRESHOLD, art.XNOR_THRESHOLD, art.XNOR_SCORE]
    assert GoldenModel(a).scores(np.zeros((2, 64), dtype=np.uint8)).shape == (2, 10)


def test_missing_manifest(tmp_path):
    with pytest.raises(art.ArtifactError, match="manifest.json: manifest not found"):
        art.load(tmp_path)


def test_missing_data_file(good):
    (good / "L1_weights.bin").unlink()
    with pytest.raises(art.ArtifactError, match=r"L1_weights\.bin: listed in manifest.json 'files' but missing"):
        art.load(good)


def test_checksum_mismatch(good):
    data = bytearray((good / "L0_thresholds.bin").read_bytes())
    data[0] ^= 1
    (good / "L0_thresholds.bin").write_bytes(bytes(data))
    with pytest.raises(art.ArtifactError, match=r"L0_thresholds\.bin: checksum mismatch"):
        art.load(good)


def test_wrong_format_version(good):
    edit_manifest(good, lambda m: m.update(format_version=99))
    with pytest.raises(art.ArtifactError, match="'format_version' is 99; this bnnflow reads version 1"):
        art.load(good)


def test_shape_mismatch_between_layers(good):
    def change(m):
        m["layers"][1]["input_bits"] = 2
    edit_manifest(good, change)
    with pytest.raises(art.ArtifactError, match=r"layers\[1\] expects 64 inputs of 2 bit\(s\), layers\[0\] produces 64 of 1"):
        art.load(good, verify_checksums=False)


def test_derived_field_mismatch(good):
    edit_manifest(good, lambda m: m["layers"][0].update(nf=3))
    with pytest.raises(art.ArtifactError, match=r"layers\[0\]: field 'nf' is 3"):
        art.load(good)


def test_truncated_weights_even_with_matching_checksum(good):
    path = good / "L2_weights.bin"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(art.ArtifactError, match="L2_weights.bin: .* bytes, layer 2 expects"):
        art.load(good, verify_checksums=False)


def test_golden_rejects_wrong_image_shape(good):
    with pytest.raises(ValueError, match=r"images must have shape \(N, 64\), got \(3, 63\)"):
        GoldenModel(art.load(good)).scores(np.zeros((3, 63), dtype=np.uint8))


@pytest.mark.parametrize("folding, message", [
    ([LayerFolding(3, 8), LayerFolding(4, 8), LayerFolding(2, 8)], "layer 0 .* PE=3 does not divide MH=64"),
    ([LayerFolding(4, 0), LayerFolding(4, 8), LayerFolding(2, 8)], "SIMD=0 must be a positive integer"),
    ([LayerFolding(4, 8), LayerFolding(4, 8)], "2 layer entries given, the network has 3 layers"),
    ([LayerFolding(4, 8), LayerFolding(4, 128), LayerFolding(2, 8)], "SIMD=128 is wider than the 64 inputs"),
])
def test_impossible_folding(folding, message):
    with pytest.raises(FoldingError, match=message):
        validate([(64, 64), (64, 32), (32, 10)], folding)


def test_folding_file_errors(tmp_path):
    bad = tmp_path / "f.json"
    bad.write_text('{"layers": [{"pe": 2}]}')
    with pytest.raises(FoldingError, match='layer 0 must be an object with exactly "pe" and "simd"'):
        load_folding(bad)
    with pytest.raises(FoldingError, match="folding file not found"):
        load_folding(tmp_path / "nope.json")
