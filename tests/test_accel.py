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
    with pytest.raises(art.ArtifactError, match="reads versions 3, 4 .*older than this bnnflow: run `bnnflow export` again"):
        art.load(root)


# -- reading the parameter stream back (bnnflow.accel.decode_param_stream, with_parameters) ----------

@pytest.mark.parametrize("seed, features, hidden, classes, bits, folding", [
    (0, 64, (64, 32), 10, 5, None),
    # 128-bit input beats: the 256-bit weight words of layer 0 take 2 beats each
    (1, 784, (48,), 10, 8, [LayerFolding(pe=16, simd=16), LayerFolding(pe=10, simd=48)]),
    # 1024-bit beats (SIMD 200 x 3 bits = 600-bit words): weight words of 800 and 3072 bits
    (2, 200, (96, 64), 7, 3, [LayerFolding(pe=4, simd=200), LayerFolding(pe=32, simd=96), LayerFolding(pe=7, simd=8)]),
])
def test_decode_param_stream_inverts_param_stream(tmp_path, seed, features, hidden, classes, bits, folding):
    from bnnflow.golden import GoldenModel

    kwargs = dict(input_features=features, hidden=hidden, classes=classes, input_bits=bits, folding=folding,
                  generate=())
    built = testing.random_artifact(tmp_path / "built", seed=seed, **kwargs)
    other = testing.random_artifact(tmp_path / "other", seed=seed + 10, **kwargs)
    assert built.signature == other.signature
    lanes, folded = accel.decode_param_stream(built, accel.param_stream(other))
    for k in range(len(other.layers)):
        np.testing.assert_array_equal(lanes[k], other.weight_lanes(k))
        expected = other.folded_thresholds(k)
        assert (folded[k] is None) == (expected is None)
        if expected is not None:
            np.testing.assert_array_equal(folded[k], expected)
            if k == 0:  # int_threshold: negative thresholds survive the two's-complement round trip
                assert folded[k].min() < 0
    view = accel.loaded_artifact(built, accel.param_stream(other))
    assert view.root == built.root and view.signature == built.signature
    for k in range(len(other.layers)):
        np.testing.assert_array_equal(view.weight_codes(k), other.weight_codes(k))
        t, expected = view.thresholds(k), other.thresholds(k)
        assert (t is None and expected is None) or np.array_equal(t, expected)
    images = np.random.default_rng(seed).integers(0, 1 << bits, size=(30, features), dtype=np.uint8)
    np.testing.assert_array_equal(GoldenModel(view).scores(images), GoldenModel(other).scores(images))
    assert not np.array_equal(GoldenModel(built).scores(images), GoldenModel(other).scores(images))


def test_decode_param_stream_refuses_another_length(tmp_path):
    a = testing.random_artifact(tmp_path / "a", seed=0, generate=())
    stream = accel.param_stream(a)
    assert stream.shape == (32, 32)
    with pytest.raises(ValueError, match=rf"parameter stream of 1023 bytes; signature 0x{a.signature:08x} \(.*a\) "
                                         r"takes 32 beats of 32 bytes = 1024 bytes"):
        accel.decode_param_stream(a, stream.reshape(-1)[:-1])


def test_with_parameters_checks_shapes(tmp_path):
    a = testing.random_artifact(tmp_path / "a", seed=0, generate=())
    lanes = [a.weight_lanes(k) for k in range(3)]
    folded = [a.folded_thresholds(k) for k in range(3)]
    with pytest.raises(ValueError, match=r"layer 1: weight lanes of shape \(16, 2, 32\), expected \(16, 4, 32\)"):
        accel.with_parameters(a, [lanes[0], lanes[1][:, :2], lanes[2]], folded)
    with pytest.raises(ValueError, match=r"layer 2: neuron parameters of shape \(10, 1\), expected None"):
        accel.with_parameters(a, lanes, [folded[0], folded[1], np.zeros((10, 1), np.int64)])
    with pytest.raises(ValueError, match="2 weight and 3 neuron-parameter arrays for 3 layers"):
        accel.with_parameters(a, lanes[:2], folded)
    view = accel.with_parameters(a, lanes, folded)
    lanes[0][0, 0, 0] ^= 1
    assert view.weight_lanes(0)[0, 0, 0] == a.weight_lanes(0)[0, 0, 0]  # the view holds its own copy


@pytest.mark.parametrize("word_bits, beats_per_word, flip, expected", [
    (160, 1, (0, 19, 0x80), False),    # bit 159: the word's top bit
    (160, 1, (0, 20, 0x01), True),     # bit 160: the first padding bit
    (35, 1, (1, 4, 0x08), True),       # bit 35 of word 1
    (35, 1, (1, 4, 0x04), False),
    (1120, 2, (0, 140, 0x01), True),   # bit 1120: above the word, in its second 1024-bit beat
    (1120, 2, (0, 139, 0x80), False),
])
def test_padding_set_marks_exactly_the_bits_above_the_word(word_bits, beats_per_word, flip, expected):
    beat_bytes = accel.beat_bits_for(word_bits) // 8
    beats = np.zeros((3 * beats_per_word, beat_bytes), np.uint8)
    word, byte, mask = flip
    beats.reshape(3, -1)[word, byte] |= mask
    assert accel.padding_set(beats, word_bits, beats_per_word).tolist() == [
        expected and w == word for w in range(3)]


def test_fields_round_trip_twos_complement():
    fields = np.array([[-2048, -1, 0, 2047], [5, -6, 7, -8]])
    bits = accel.fields_to_bits(fields, 12)
    np.testing.assert_array_equal(accel.bits_to_fields(bits, 12, signed=True), fields)
    np.testing.assert_array_equal(accel.bits_to_fields(bits, 12, signed=False), fields % 4096)
