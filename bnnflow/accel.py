"""The accelerator's interface, as the block design and the host see it.

Both network tops -- the generated Verilog ``bnnflow_accel`` and the Vitis HLS
``bnnflow_top`` IP -- present the same interface (docs/ACCEL.md):

- **DMA-ready streams.** TDATA is a power-of-two number of bytes (32..1024
  bits, the AXI DMA's stream widths). An engine word (SIMD input elements, or
  PE output scores) occupies ``beats_per_word`` consecutive beats, lowest
  bits first; the bits above the word are padding, zero both ways.
- **Registers.** One AXI4-Lite map: the map Vitis HLS gives
  ``bnnflow_top(in, out, reps, mode, &signature, &status)``.
- **Runtime parameters.** In load mode the accelerator takes its weights
  and thresholds from the input stream (the *parameter stream*, defined
  here); the memories' power-on contents are the weights it was built with.
- **Hardware signature.** What a bitstream is built for (topology, folding,
  bit widths, stream widths): a 32-bit value the accelerator reports and the
  export's manifest carries. Parameters of one signature are interchangeable.

The memory word layouts are docs/ARTIFACT.md's "RTL memory files"; this
module turns an artifact into those words for the parameter stream (the RTL
``.mem`` writer in ``bnnflow.rtlgen`` derives them separately, and
tests/test_accel.py checks the two agree word for word).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import packing

if TYPE_CHECKING:  # artifact imports this module; only type names are needed here
    from .artifact import Artifact, LayerSpec

#: Version of the accelerator interface (registers, streams, parameter stream).
INTERFACE_VERSION = 1

#: Narrowest and widest stream beat. The AXI DMA (PG021) takes 8..1024-bit
#: streams; beats narrower than 32 bits would make the parameter stream (whose
#: words are hundreds of bits) needlessly long, so 32 is the floor.
MIN_BEAT_BITS = 32
MAX_BEAT_BITS = 1024

# -- registers (AXI4-Lite, 32-bit, byte offsets) --------------------------------
#: ap_ctrl_hs control: bit 0 ap_start, 1 ap_done (clear on read), 2 ap_idle,
#: 3 ap_ready (clear on read), 7 auto_restart.
CTRL = 0x00
GIE = 0x04
IER = 0x08
ISR = 0x0C
#: Images (infer mode) in the next run; 0 = consume nothing, just report.
REPS = 0x10
#: 0 = infer, 1 = load parameters.
MODE = 0x18
#: The build's hardware signature (read-only; written by every run).
SIGNATURE = 0x20
SIGNATURE_CTRL = 0x24
#: What the last run saw (read-only; written by every run), STATUS_* bits.
STATUS = 0x28
STATUS_CTRL = 0x2C
#: Address bits of the AXI4-Lite slave (offsets 0x00..0x3F).
ADDR_BITS = 6

AP_START, AP_DONE, AP_IDLE, AP_READY, AUTO_RESTART = 1 << 0, 1 << 1, 1 << 2, 1 << 3, 1 << 7

MODE_INFER = 0
MODE_LOAD = 1

#: A beat of the input stream had a nonzero padding bit or a TKEEP bit clear.
STATUS_FORMAT_ERROR = 1 << 0
#: Load mode: TLAST was not exactly on the parameter stream's last beat.
STATUS_LOAD_LENGTH_ERROR = 1 << 1
#: MODE held a value other than MODE_INFER / MODE_LOAD (nothing was done).
STATUS_BAD_MODE = 1 << 2

STATUS_TEXT = {
    STATUS_FORMAT_ERROR: "an input beat had a nonzero padding bit or TKEEP bit clear",
    STATUS_LOAD_LENGTH_ERROR: "the parameter stream's TLAST was not on its last beat (wrong length)",
    STATUS_BAD_MODE: "the mode register held an unknown mode",
}


def describe_status(status: int) -> str:
    """The STATUS bits as words ("ok" when clear)."""
    words = [text for bit, text in STATUS_TEXT.items() if status & bit]
    unknown = status & ~sum(STATUS_TEXT)
    if unknown:
        words.append(f"unknown status bits 0x{unknown:x}")
    return "; ".join(words) or "ok"


# -- streams ------------------------------------------------------------------
def beat_bits_for(word_bits: int) -> int:
    """TDATA width of a stream carrying ``word_bits``-bit words: a power of two in 32..1024."""
    if word_bits < 1:
        raise ValueError(f"a stream word needs at least 1 bit, got {word_bits}")
    bits = MIN_BEAT_BITS
    while bits < word_bits and bits < MAX_BEAT_BITS:
        bits *= 2
    return bits


@dataclass(frozen=True)
class Stream:
    """One side of the accelerator as the DMA sees it."""

    word_bits: int         # meaningful bits of one engine word
    words_per_image: int   # the first layer's in_stream_words (in), the last layer's out_stream_words (out)

    @property
    def beat_bits(self) -> int:
        return beat_bits_for(self.word_bits)

    @property
    def beat_bytes(self) -> int:
        return self.beat_bits // 8

    @property
    def beats_per_word(self) -> int:
        return -(-self.word_bits // self.beat_bits)

    @property
    def word_bytes(self) -> int:
        """Bytes one engine word takes in a DMA buffer (its beats, padding included)."""
        return self.beats_per_word * self.beat_bytes

    @property
    def bytes_per_image(self) -> int:
        return self.word_bytes * self.words_per_image


def input_stream(artifact: "Artifact") -> Stream:
    first = artifact.layers[0]
    return Stream(first.in_stream_bits, first.in_stream_words)


def output_stream(artifact: "Artifact") -> Stream:
    last = artifact.layers[-1]
    return Stream(last.out_stream_bits, last.out_stream_words)


# -- memory words ---------------------------------------------------------------
def weight_memory_bits(artifact: "Artifact", k: int) -> np.ndarray:
    """(NF*SF, PE*SIMD*K) bits of layer ``k``'s weight memory: word = address, PE p lane j at bits [(p*SIMD + j)*K, +K)."""
    layer = artifact.layers[k]
    lanes = artifact.weight_lanes(k)                          # (PE, depth, SIMD) codes
    words = np.ascontiguousarray(lanes.transpose(1, 0, 2)).reshape(layer.weight_depth, layer.pe * layer.simd)
    return packing.codes_to_word_bits(words, layer.weight_bits)


def neuron_param_fields(artifact: "Artifact", k: int) -> np.ndarray | None:
    """(NF, PE*n) fields of layer ``k``'s neuron-parameter memory, or None when it has none.

    Threshold layers: PE p's threshold t is field p*N + t (TB bits each).
    Affine score layers: PE p's mul is field 2p, its add 2p + 1 (affine_bits each).
    """
    folded = artifact.folded_thresholds(k)
    if folded is None:
        folded = artifact.folded_affine(k)                    # (PE, NF, n)
    if folded is None:
        return None
    pe, nf, n = folded.shape
    return np.ascontiguousarray(folded.transpose(1, 0, 2)).reshape(nf, pe * n)


def neuron_param_field_bits(layer: "LayerSpec") -> int:
    """Bits of one field of the neuron-parameter memory: threshold_bits, or affine_bits."""
    return layer.threshold_bits if layer.has_thresholds else layer.affine_bits


def fields_to_bits(fields: np.ndarray, field_bits: int) -> np.ndarray:
    """(..., n) integers -> (..., n * field_bits) bits, field j at bits [j*field_bits, (j+1)*field_bits).

    Two's complement: negative values keep their low ``field_bits`` bits.
    """
    fields = np.asarray(fields, dtype=np.int64)
    shifts = np.arange(field_bits, dtype=np.int64)
    bits = (fields[..., None] >> shifts) & 1
    return bits.reshape(*fields.shape[:-1], fields.shape[-1] * field_bits).astype(np.uint8)


def bits_to_beats(bits: np.ndarray, beat_bits: int) -> np.ndarray:
    """(words, W) bits -> (words * beats_per_word, beat_bits // 8) bytes, lowest beat first, padding zero."""
    words, width = bits.shape
    beats = -(-width // beat_bits)
    padded = np.zeros((words, beats * beat_bits), dtype=np.uint8)
    padded[:, :width] = bits
    return np.packbits(padded.reshape(words * beats, beat_bits), axis=1, bitorder="little")


@dataclass(frozen=True)
class ParamSegment:
    """One memory's part of the parameter stream."""

    layer: int
    memory: str            # "weights", "thresholds", or "affine" (a score layer's (mul, add))
    words: int             # memory depth
    word_bits: int         # memory width
    beats_per_word: int

    @property
    def beats(self) -> int:
        return self.words * self.beats_per_word


def param_segments(artifact: "Artifact") -> list[ParamSegment]:
    """The parameter stream's segments in stream order: per layer, weights then thresholds."""
    beat = input_stream(artifact).beat_bits
    segments = []
    for layer in artifact.layers:
        width = layer.pe * layer.weight_word_bits
        segments.append(ParamSegment(layer.index, "weights", layer.weight_depth, width, -(-width // beat)))
        if layer.neuron_param_bits:
            width = layer.pe * layer.neuron_param_bits
            memory = "thresholds" if layer.has_thresholds else "affine"
            segments.append(ParamSegment(layer.index, memory, layer.nf, width, -(-width // beat)))
    return segments


def param_beats(artifact: "Artifact") -> int:
    """Beats of the parameter stream (what a load-mode run consumes)."""
    return sum(s.beats for s in param_segments(artifact))


def param_stream(artifact: "Artifact") -> np.ndarray:
    """The bytes of a load-mode transfer: every memory word of every layer, in segment order.

    Each word is split into beats of the input stream's width, lowest bits in
    the first beat; bits above the word are zero. ``(param_beats, beat_bytes)``
    uint8, little-endian within a beat.
    """
    beat = input_stream(artifact).beat_bits
    chunks = []
    for segment in param_segments(artifact):
        k = segment.layer
        if segment.memory == "weights":
            bits = weight_memory_bits(artifact, k)
        else:
            bits = fields_to_bits(neuron_param_fields(artifact, k), neuron_param_field_bits(artifact.layers[k]))
        chunks.append(bits_to_beats(bits, beat))
    return np.concatenate(chunks, axis=0)


# -- hardware signature -----------------------------------------------------------
#: The layer fields a bitstream is built for (everything but the parameter values).
HARDWARE_LAYER_FIELDS = ("kind", "in_features", "out_features", "pe", "simd", "input_bits", "weight_bits",
                         "weight_encoding", "n_thresholds", "affine_bits", "mul_bits", "acc_bits", "threshold_bits",
                         "output_bits", "output_signed")


def hardware_description(layers: "list[LayerSpec]") -> dict[str, Any]:
    """What a bitstream is built for, as plain JSON data (the signature is its hash)."""
    first, last = layers[0], layers[-1]
    return {
        "interface_version": INTERFACE_VERSION,
        "in_beat_bits": beat_bits_for(first.in_stream_bits),
        "out_beat_bits": beat_bits_for(last.out_stream_bits),
        "layers": [_hardware_layer(layer) for layer in layers],
    }


def _hardware_layer(layer: "LayerSpec") -> dict[str, Any]:
    """A layer's hardware fields; a convolution adds its 'conv' object (FC layers keep their old signature)."""
    fields = {name: getattr(layer, name) for name in HARDWARE_LAYER_FIELDS}
    if layer.conv is not None:
        fields["conv"] = dataclasses.asdict(layer.conv)
    return fields


def signature_of(description: dict[str, Any]) -> int:
    """32-bit signature: the first 4 bytes of SHA-256 over the compact, key-sorted JSON, little-endian."""
    text = json.dumps(description, sort_keys=True, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def signature(artifact: "Artifact") -> int:
    return signature_of(hardware_description(artifact.layers))


def describe_difference(built: dict[str, Any], wanted: dict[str, Any]) -> str:
    """The first fields where two hardware descriptions differ, as one readable sentence.

    Either side may be malformed (a hand-edited manifest or signature file):
    what is not a dict or list counts as empty, so the sentence still names it.
    """
    def as_dict(value: Any) -> dict[str, Any]:
        return value if isinstance(value, dict) else {}

    built, wanted = as_dict(built), as_dict(wanted)
    diffs = [f"{key}: bitstream {built.get(key)}, export {wanted.get(key)}"
             for key in ("interface_version", "in_beat_bits", "out_beat_bits") if built.get(key) != wanted.get(key)]
    bl, wl = built.get("layers"), wanted.get("layers")
    bl, wl = (bl if isinstance(bl, list) else []), (wl if isinstance(wl, list) else [])
    if len(bl) != len(wl):
        diffs.append(f"layers: bitstream has {len(bl)}, export {len(wl)}")
    for i, (b, w) in enumerate(zip(map(as_dict, bl), map(as_dict, wl))):
        diffs += [f"layer {i} {name}: bitstream {b.get(name)}, export {w.get(name)}"
                  for name in (*HARDWARE_LAYER_FIELDS, "conv") if b.get(name) != w.get(name)]
    return "; ".join(diffs[:4]) + ("; ..." if len(diffs) > 4 else "") if diffs else "no field differs"


#: Bit 0 of SIGNATURE_CTRL / STATUS_CTRL: the run wrote the register since it was last read (clear on read).
AP_VLD = 1 << 0


# -- reading beats back (the simulated accelerator, tests) ----------------------------
def beats_to_bits(beats: np.ndarray, word_bits: int, beats_per_word: int) -> np.ndarray:
    """(words * beats_per_word, beat_bytes) bytes -> (words, word_bits) bits; inverse of :func:`bits_to_beats`.

    The padding above each word (in its last beat) is dropped, as the
    accelerator drops it; :func:`padding_set` says whether it was zero.
    """
    beats = np.asarray(beats, dtype=np.uint8)
    if beats.ndim != 2 or beats.shape[0] % beats_per_word:
        raise ValueError(f"beats of shape {beats.shape}: expected (words * {beats_per_word}, beat_bytes)")
    words = beats.shape[0] // beats_per_word
    bits = np.unpackbits(beats.reshape(words, -1), axis=1, bitorder="little")
    if bits.shape[1] < word_bits:
        raise ValueError(f"{beats_per_word} beat(s) of {beats.shape[1]} bytes hold fewer than {word_bits} bits")
    return bits[:, :word_bits]


def padding_set(beats: np.ndarray, word_bits: int, beats_per_word: int) -> np.ndarray:
    """(words,) bool: which words have a nonzero bit above ``word_bits`` (the accelerator's format check)."""
    beats = np.asarray(beats, dtype=np.uint8)
    words = beats.shape[0] // beats_per_word
    flat = beats.reshape(words, -1)
    whole, rest = divmod(word_bits, 8)
    bad = flat[:, whole + (rest > 0):].any(axis=1)
    if rest:
        bad |= (flat[:, whole] >> rest) != 0
    return bad


def bits_to_fields(bits: np.ndarray, field_bits: int, signed: bool) -> np.ndarray:
    """(..., n * field_bits) bits -> (..., n) int64; inverse of :func:`fields_to_bits`.

    Two's complement when ``signed``.
    """
    bits = np.asarray(bits, dtype=np.int64)
    fields = bits.reshape(*bits.shape[:-1], bits.shape[-1] // field_bits, field_bits)
    values = (fields << np.arange(field_bits, dtype=np.int64)).sum(axis=-1)
    if signed:
        values -= (values >> (field_bits - 1) & 1) << field_bits
    return values


def decode_param_stream(artifact: "Artifact", data: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """A load-mode transfer -> (weight lanes per layer, neuron parameters per layer); inverse of :func:`param_stream`.

    Why: the simulated accelerator (``bnnflow.host.simdevice``) must compute
    with what a load wrote into its memories, read the way the hardware reads
    the stream. ``artifact`` fixes the shapes (its hardware signature); its own
    parameters are not used. ``data`` is the transfer's bytes, ``param_beats``
    beats of the input stream's width. Returns per layer the (PE, NF*SF, SIMD)
    weight codes (``Artifact.weight_lanes``'s shape) and the (PE, NF, n) int64
    neuron parameters: thresholds (``Artifact.folded_thresholds``), a score
    layer's (mul, add) (``Artifact.folded_affine``), or None.
    Padding bits are dropped, as the accelerator drops them.
    """
    beat_bytes = input_stream(artifact).beat_bytes
    flat = np.asarray(data, dtype=np.uint8).reshape(-1)
    beats = param_beats(artifact)
    if flat.size != beats * beat_bytes:
        raise ValueError(f"parameter stream of {flat.size} bytes; signature 0x{signature(artifact):08x} "
                         f"({artifact.root}) takes {beats} beats of {beat_bytes} bytes = {beats * beat_bytes} bytes")
    rows = flat.reshape(beats, beat_bytes)
    lanes: list[np.ndarray] = [np.zeros(0, np.uint8)] * len(artifact.layers)
    folded: list[np.ndarray | None] = [None] * len(artifact.layers)
    row = 0
    for segment in param_segments(artifact):
        layer = artifact.layers[segment.layer]
        bits = beats_to_bits(rows[row:row + segment.beats], segment.word_bits, segment.beats_per_word)
        row += segment.beats
        if segment.memory == "weights":      # word = address, PE p lane j at bits [(p*SIMD + j)*K, +K)
            codes = packing.word_bits_to_codes(bits, layer.pe * layer.simd, layer.weight_bits)
            lanes[segment.layer] = np.ascontiguousarray(
                codes.reshape(layer.weight_depth, layer.pe, layer.simd).transpose(1, 0, 2))
        else:                                # word = nf, PE p's n fields side by side
            fields = bits_to_fields(bits, neuron_param_field_bits(layer), signed=True)
            n = fields.shape[1] // layer.pe
            folded[segment.layer] = np.ascontiguousarray(fields.reshape(layer.nf, layer.pe, n).transpose(1, 0, 2))
    return lanes, folded


def with_parameters(artifact: "Artifact", lanes: list[np.ndarray],
                    folded: list[np.ndarray | None]) -> "Artifact":
    """``artifact`` with its weights and neuron parameters replaced by arrays in memory.

    Why: the golden model reads an artifact; an accelerator after a load
    computes with the loaded memories, which need not be any export on disk.
    The view has ``artifact``'s layers, manifest and root (its vectors are the
    export's); ``weight_lanes``, ``folded_thresholds``, ``folded_affine`` and
    everything built on them (``weight_codes``, ``thresholds``,
    ``bnnflow.golden.GoldenModel``) use ``lanes``/``folded`` (as
    :func:`decode_param_stream` returns them) -- including padded lanes that
    do not hold the padding code, as the hardware would.
    """
    layers = artifact.layers
    if len(lanes) != len(layers) or len(folded) != len(layers):
        raise ValueError(f"{len(lanes)} weight and {len(folded)} neuron-parameter arrays for {len(layers)} layers")
    for k, layer in enumerate(layers):
        shape = (layer.pe, layer.weight_depth, layer.simd)
        if np.shape(lanes[k]) != shape:
            raise ValueError(f"layer {k}: weight lanes of shape {np.shape(lanes[k])}, expected {shape}")
        per_neuron = layer.n_thresholds if layer.has_thresholds else (2 if layer.affine_bits else 0)
        wanted = (layer.pe, layer.nf, per_neuron) if per_neuron else None
        got = None if folded[k] is None else np.shape(folded[k])
        if got != wanted:
            raise ValueError(f"layer {k}: neuron parameters of shape {got}, expected {wanted}")
    return _parameter_view_class()(artifact, lanes, folded)


def loaded_artifact(artifact: "Artifact", data: np.ndarray) -> "Artifact":
    """What an accelerator built for ``artifact``'s signature computes with after loading ``data``."""
    return with_parameters(artifact, *decode_param_stream(artifact, data))


@functools.cache
def _parameter_view_class() -> type:
    # bnnflow.artifact imports this module, so the subclass is made on first use
    from .artifact import Artifact

    class ParameterView(Artifact):
        """An artifact whose parameters are arrays in memory (:func:`with_parameters`)."""

        def __init__(self, base: Artifact, lanes: list[np.ndarray], folded: list[np.ndarray | None]):
            super().__init__(base.root, base.manifest, base.layers)
            self.base = base
            self._lanes = [np.asarray(a, dtype=np.uint8).copy() for a in lanes]
            self._folded = [None if f is None else np.asarray(f, dtype=np.int64).copy() for f in folded]

        def weight_lanes(self, i: int) -> np.ndarray:
            return self._lanes[i].copy()

        def folded_thresholds(self, i: int) -> np.ndarray | None:
            folded = self._folded[i]
            return None if folded is None or not self.layers[i].has_thresholds else folded.copy()

        def folded_affine(self, i: int) -> np.ndarray | None:
            folded = self._folded[i]
            return None if folded is None or self.layers[i].has_thresholds else folded.copy()

        def __repr__(self) -> str:
            return f"<parameters loaded into the accelerator of {self.root} (signature 0x{self.signature:08x})>"

    return ParameterView
