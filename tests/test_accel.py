"""The accelerator interface's numbers (bnnflow.accel, docs/ACCEL.md): beats, parameter stream, signature."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bnnflow import accel
from bnnflow import artifact as art
from bnnflow import rtlgen, testing
from bnnflow.folding import LayerFolding


@pytest.mark.parametrize("word_bits, beat_bits, beats", [
    (1, 32, 1), (32, 32, 1), (33, 64, 1), (100, 128, 1), (160, 256, 1), (512, 512, 1),
    (1000, 1024, 1), (1024, 1024, 1), (1025, 1024, 2), (2048, 1024, 2), (4096, 1024, 4), (4097, 1024, 5)])
def test_beat_widths_are_dma_stream_widths(word_bits, beat_bits, beats):
    stream = accel.Stream(word_bits, words_per_image=3)
    assert (stream.beat_bits, stream.beats_per_word) == (beat_bits, beats)
    assert stream.word_bytes == beats * beat_bits // 8
    assert stream.bytes_per_image == 3 * stream.word_bytes


def test_beat_width_refuses_empty_word():
    with pytest.raises(ValueError, match="at least 1 bit, got 0"):
        accel.beat_bits_for(0)


def _memory_words(artifact: art.Artifact, segment: accel.ParamSegment) -> list[int]:
    """The words of the RTL's .mem file for ``segment`` (the $readmemh text, an independent path)."""
    text = (rtlgen.weight_mem_text(artifact, segment.layer) if segment.memory == "weights"
            else rtlgen.threshold_mem_text(artifact, segment.layer))
    return [int(line, 16) for line in text.split()]


@pytest.mark.parametrize("seed, features, hidden, classes, bits, folding", [
    (0, 64, (64, 32), 10, 5, None),
    (1, 784, (48,), 10, 8, [LayerFolding(pe=16, simd=16), LayerFolding(pe=10, simd=48)]),
    (2, 200, (96, 64), 7, 3, [LayerFolding(pe=4, simd=200), LayerFolding(pe=32, simd=96), LayerFolding(pe=7, simd=8)]),
])
def test_param_stream_holds_every_memory_word_in_order(tmp_path, seed, features, hidden, classes, bits, folding):
    artifact = testing.random_artifact(tmp_path / "x", seed=seed, input_features=features, hidden=hidden,
                                       classes=classes, input_bits=bits, folding=folding, generate=())
    stream = accel.param_stream(artifact)
    beat = accel.input_stream(artifact).beat_bits
    assert stream.dtype == np.uint8 and stream.shape == (accel.param_beats(artifact), beat // 8)
    row = 0
    for segment in accel.param_segments(artifact):
        for word in _memory_words(artifact, segment):
            raw = stream[row:row + segment.beats_per_word].tobytes()
            row += segment.beats_per_word
            value = int.from_bytes(raw, "little")
            assert value == word, f"layer {segment.layer} {segment.memory}: word differs"
            assert value >> segment.word_bits == 0  # padding above the word is zero
    assert row == stream.shape[0]
    kinds = [(s.layer, s.memory) for s in accel.param_segments(artifact)]
    expected = [(k, m) for k in range(len(hidden) + 1) for m in ("weights", "thresholds")][:-1]
    assert kinds == expected


def test_signature_depends_on_shape_and_folding_not_on_weights(tmp_path):
    a = testing.random_artifact(tmp_path / "a", seed=1, generate=())
    b = testing.random_artifact(tmp_path / "b", seed=2, generate=())
    assert not np.array_equal(accel.param_stream(a), accel.param_stream(b))
    assert a.signature == b.signature == accel.signature(a)
    assert a.manifest["hardware"]["signature"] == f"0x{a.signature:08x}"
    folded = [LayerFolding(pe=8, simd=32), LayerFolding(pe=16, simd=16), LayerFolding(pe=5, simd=16)]
    c = testing.random_artifact(tmp_path / "c", seed=1, folding=folded, generate=())
    assert c.signature != a.signature
    difference = accel.describe_difference(c.manifest["hardware"]["description"], a.manifest["hardware"]["description"])
    assert difference == ("out_beat_bits: bitstream 64, export 128; layer 0 pe: bitstream 8, export 16; "
                          "layer 1 simd: bitstream 16, export 32; layer 2 pe: bitstream 5, export 10; ...")


def test_signature_is_the_documented_hash(tmp_path):
    import hashlib

    a = testing.random_artifact(tmp_path / "a", seed=3, generate=())
    text = json.dumps(a.manifest["hardware"]["description"], sort_keys=True, separators=(",", ":"))
    assert a.signature == int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def _edit(root, change) -> None:
    path = root / art.MANIFEST
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def test_manifest_hardware_section_is_checked(tmp_path):
    root = tmp_path / "a"
    testing.random_artifact(root, seed=4, generate=())
    _edit(root, lambda m: m["hardware"]["description"]["layers"][1].update(pe=99))
    with pytest.raises(art.ArtifactError, match=r"hardware: field 'description' does not match the layers "
                                                r"\(layer 1 pe: bitstream 99, export"):
        art.load(root)


def test_manifest_signature_is_checked(tmp_path):
    root = tmp_path / "a"
    good = testing.random_artifact(root, seed=5, generate=())
    _edit(root, lambda m: m["hardware"].update(signature="0x00000000"))
    with pytest.raises(art.ArtifactError, match=f"hardware: field 'signature' is '0x00000000', the layers give "
                                                f"'0x{good.signature:08x}'"):
        art.load(root)
    _edit(root, lambda m: m.pop("hardware"))
    with pytest.raises(art.ArtifactError, match="missing field 'hardware'|field 'hardware'"):
        art.load(root)


def test_version_1_export_is_told_to_re_export(tmp_path):
    root = tmp_path / "a"
    testing.random_artifact(root, seed=6, generate=())
    _edit(root, lambda m: m.update(format_version=1))
    with pytest.raises(art.ArtifactError, match="reads version 2 .*older than this bnnflow: run `bnnflow export` again"):
        art.load(root)
