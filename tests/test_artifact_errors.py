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
    with pytest.raises(art.ArtifactError, match="'format_version' is 99; this bnnflow reads versions 3, 4"):
        art.load(good)


def test_shape_mismatch_between_layers(good):
    def change(m):
        m["layers"][1]["input_bits"] = 2
    edit_manifest(good, change)
    with pytest.raises(art.ArtifactError, match=r"layers\[1\]: a xnor_threshold layer reads 1-bit inputs and 1-bit sym weights, got input_bits=2"):
        art.load(good, verify_checksums=False)


def test_chain_mismatch_between_layers(good):
    edit_manifest(good, lambda m: m["layers"][0].update(out_features=32, nf=2))
    with pytest.raises(art.ArtifactError, match=r"layers\[1\] expects 64 inputs of 1 bit\(s\), layers\[0\] produces 32 of 1"):
        art.load(good, verify_checksums=False)


def test_derived_field_mismatch(good):
    edit_manifest(good, lambda m: m["layers"][0].update(nf=3))
    with pytest.raises(art.ArtifactError, match=r"layers\[0\]: field 'nf' is 3"):
        art.load(good)


def test_truncated_weights_even_with_matching_checksum(good):
    path = good / "L2_weights.bin"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(art.ArtifactError, match=r"L2_weights.bin: 39 bytes, manifest.json 'files' says 40"):
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


# -- the spec's rules (docs/ARTIFACT.md), each refused with the field named ---------------------------------

def _files_entry(root, rel):
    return {"sha256": art.sha256_file(root / rel), "bytes": (root / rel).stat().st_size}


@pytest.mark.parametrize("change, message", [
    (lambda m: m["network"].update(input_bits=9), r"network: field 'input_bits' is 9, expected an integer in 1\.\.8"),
    (lambda m: m.update(format_version=True), r"'format_version' is True; this bnnflow reads versions 3, 4"),
    (lambda m: m.update(format_version=1.0), r"'format_version' is 1\.0; this bnnflow reads versions 3, 4"),
    (lambda m: m["layers"][1].update(index=2), r"layers\[1\]: field 'index' is 2, expected 1"),
    (lambda m: m["layers"][0].update(pe=0), r"layers\[0\]: field 'pe' is 0, expected an integer >= 1"),
    (lambda m: m["layers"][0].update(simd=-4), r"layers\[0\]: field 'simd' is -4, expected an integer >= 1"),
    (lambda m: m["layers"][0].update(pe="16"), r"layers\[0\]: field 'pe' is str '16', expected int"),
    (lambda m: m["layers"][0].pop("nf"), r"layers\[0\]: missing field 'nf'"),
    (lambda m: m["layers"][2].update(output_signed=False), r"layers\[2\]: field 'output_signed' is False"),
    (lambda m: m["network"].update(num_classes=1), r"network: field 'num_classes' is 1, expected an integer >= 2"),
    (lambda m: m.update(layers={"0": {}}), r"field 'layers' is dict"),
    (lambda m: m["layers"].__setitem__(1, [1, 2]), r"layers\[1\]: expected an object, got list"),
    (lambda m: m.update(network=[64, 5, 10]), r"field 'network' is list"),
    (lambda m: m["files"]["L0_weights.bin"].update(bytes=3), r"L0_weights\.bin: \d+ bytes, manifest\.json 'files' says 3"),
    (lambda m: m["files"]["L0_weights.bin"].update(bytes="many"), r"files\['L0_weights\.bin'\]: field 'bytes' is str"),
    (lambda m: m["files"]["L0_weights.bin"].pop("sha256"), r"files\['L0_weights\.bin'\]: missing field 'sha256'"),
    (lambda m: m["files"].pop("rtl/bnnflow_top.v"), r"rtl\.top names 'rtl/bnnflow_top\.v', which is not listed"),
    (lambda m: m["files"].pop("hls/bnnflow_params.h"), r"hls\.header names 'hls/bnnflow_params\.h', which is not listed"),
    (lambda m: m["layers"][0].update(weights="../L0_weights.bin"), r"layers\[0\]\.weights: path '\.\./L0_weights\.bin' must be relative and stay inside"),
    (lambda m: m["vectors"].update(images="/etc/passwd"), r"vectors\.images: path '/etc/passwd' must be relative"),
    (lambda m: m["files"].update({"../x.bin": {"sha256": "0" * 64, "bytes": 0}}), r"files\['\.\./x\.bin'\]: path '\.\./x\.bin' must be relative"),
])
def test_manifest_rules(tmp_path, change, message):
    root = tmp_path / "full"
    random_artifact(root, seed=5, n_vectors=2)
    edit_manifest(root, change)
    with pytest.raises(art.ArtifactError, match=message):
        art.load(root)


def test_manifest_not_an_object(good):
    (good / art.MANIFEST).write_text("[1, 2, 3]")
    with pytest.raises(art.ArtifactError, match=r"manifest\.json: expected a JSON object, got list"):
        art.load(good)


def test_symlink_out_of_the_folder_is_refused(good, tmp_path):
    outside = tmp_path / "outside.bin"
    shutil.copyfile(good / "L1_weights.bin", outside)
    (good / "L1_weights.bin").unlink()
    (good / "L1_weights.bin").symlink_to(outside)
    with pytest.raises(art.ArtifactError, match=r"'L1_weights\.bin' resolves outside the export folder"):
        art.load(good)


@pytest.mark.parametrize("name", ["L1_weights.bin", "L0_thresholds.bin", "vectors/scores.bin"])
def test_trailing_bytes_are_refused_even_with_updated_manifest(good, name):
    path = good / name
    path.write_bytes(path.read_bytes() + b"\0")
    edit_manifest(good, lambda m: m["files"].__setitem__(name, _files_entry(good, name)))
    with pytest.raises(art.ArtifactError, match=rf"{name}: \d+ bytes, (layer \d expects|expected) \d+"):
        from bnnflow.writer import read_vectors
        read_vectors(art.load(good))


def test_threshold_outside_its_field_is_refused(good):
    a = art.load(good)
    t = np.fromfile(good / "L1_thresholds.bin", dtype="<i4")
    t[3] = 1 << a.layers[1].threshold_bits
    t.tofile(good / "L1_thresholds.bin")
    edit_manifest(good, lambda m: m["files"].__setitem__("L1_thresholds.bin", _files_entry(good, "L1_thresholds.bin")))
    with pytest.raises(art.ArtifactError, match=rf"L1_thresholds\.bin: threshold {1 << a.layers[1].threshold_bits} of layer 1 does not fit"):
        art.load(good)


def test_padding_weight_of_zero_is_refused(tmp_path):
    """A padded lane must hold weight 1 (so it adds nothing); a 0 there would change every level but golden."""
    root = tmp_path / "pad"
    random_artifact(root, seed=2, input_features=100, hidden=(48,), classes=10, input_bits=3,
                    folding=[LayerFolding(16, 32), LayerFolding(5, 16)], n_vectors=2, generate=())
    raw = bytearray((root / "L0_weights.bin").read_bytes())
    raw[12] &= ~(1 << 4) & 0xFF   # PE 0, word 3 (sf 3: synapses 96..127, 4 bytes a word): lane 4 = synapse 100
    (root / "L0_weights.bin").write_bytes(bytes(raw))
    edit_manifest(root, lambda m: m["files"].__setitem__("L0_weights.bin", _files_entry(root, "L0_weights.bin")))
    with pytest.raises(art.ArtifactError, match=r"L0_weights\.bin: layer 0 has a padded lane \(synapse >= 100\)"):
        art.load(root)


def test_export_replaces_a_previous_export_atomically(tmp_path):
    root = tmp_path / "export"
    first = random_artifact(root, seed=1, n_vectors=2, generate=())
    (root / "stray.txt").write_text("left from an old export")
    second = random_artifact(root, seed=2, n_vectors=2, generate=())
    assert not (root / "stray.txt").exists()
    assert first.manifest["files"] != second.manifest["files"]
    assert not list(tmp_path.glob(".export.*")), "no staging folder is left behind"


def test_export_refuses_a_folder_that_is_not_an_export(tmp_path):
    root = tmp_path / "mine"
    root.mkdir()
    (root / "notes.txt").write_text("keep me")
    with pytest.raises(art.ArtifactError, match=r"mine: folder exists, is not empty and holds no manifest\.json"):
        random_artifact(root, seed=1, n_vectors=2, generate=())
    assert (root / "notes.txt").read_text() == "keep me"


def test_interrupted_export_keeps_the_previous_one(tmp_path, monkeypatch):
    from bnnflow import writer

    root = tmp_path / "export"
    random_artifact(root, seed=1, n_vectors=2, generate=())
    before = (root / art.MANIFEST).read_text()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(writer, "_finish_manifest", crash)
    with pytest.raises(KeyboardInterrupt):
        random_artifact(root, seed=2, n_vectors=2, generate=())
    assert (root / art.MANIFEST).read_text() == before
    art.load(root)
    assert not list(tmp_path.glob(".export.*"))


def test_manifest_missing_names_an_interrupted_export(tmp_path):
    (tmp_path / ".export.partial-123").mkdir()
    with pytest.raises(art.ArtifactError, match=r"\.export\.partial-123 is left from an interrupted export"):
        art.load(tmp_path / "export")


def test_export_older_than_its_model_is_refused(digits_run, tmp_path):
    """Retraining into a run folder leaves the old export: every consumer (load) says to re-export."""
    import torch

    from bnnflow.export import export_run

    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    exported = export_run(run, generate=())
    assert exported.manifest["source"] == {"model": "model.pt", "sha256": art.sha256_file(run / "model.pt")}
    art.load(run / "export")
    state = torch.load(run / "model.pt", weights_only=True)
    state["head.weight"] = -state["head.weight"]
    torch.save(state, run / "model.pt")
    with pytest.raises(art.ArtifactError, match=r"export is older than the model: .*model\.pt changed after this "
                                                r"export was written.*re-export with `bnnflow export "):
        art.load(run / "export")
    art.load(run / "export", check_model=False)     # tools that inspect old exports can still read them
    export_run(run, generate=())                    # re-exporting clears it
    art.load(run / "export")


@pytest.mark.parametrize("images, error, message", [
    (np.full((1, 64), 0.9), TypeError, r"images must be an integer array .* got dtype float64"),
    (np.ones((1, 64), dtype=bool), TypeError, r"got dtype bool"),
    (np.full((1, 64), 32), ValueError, r"unsigned 5-bit integers, got values in \[32, 32\]"),
    (np.full((1, 64), -1), ValueError, r"got values in \[-1, -1\]"),
])
def test_golden_refuses_images_it_would_misread(good, images, error, message):
    """A float 0.9 once scored exactly like pixel 0: the golden model takes integers only."""
    with pytest.raises(error, match=message):
        GoldenModel(art.load(good)).scores(images)
