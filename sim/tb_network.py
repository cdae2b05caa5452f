"""cocotb testbench of a layer pipeline described by an artifact (runs in the simulator).

The DUT is the generated ``bnnflow_top`` (or, for :mod:`tb_mvtu`, one
``bnn_mvtu`` built with layer 0's parameters of a one-layer artifact); both
map layer 0's input words to the last layer's output words. Expectations come
from :class:`bnnflow.golden.GoldenModel` on the same artifact and images, and
the stream words from :mod:`bnnflow.packing`, so nothing here restates the
bit layout.

Convolutional artifacts run the same way: an image is layer 0's
``in_stream_words`` words (the map pixel by pixel), the scores the last
layer's ``out_stream_words``. On the network top the testbench also records
every word each layer hands to the next (the top's internal streams
``y{k}``, after a pool) and returns them per layer, so each layer's output can
be compared with :meth:`bnnflow.golden.GoldenModel.trace`; with ``check`` it
compares them here too.

Config (JSON, path in $BNNFLOW_TB_CONFIG): artifact, images (.npy), check,
seed, idle, backpressure, timing_vectors, result (output JSON path).
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

from bnnflow import artifact as art
from bnnflow import packing
from bnnflow.golden import GoldenModel
from bnnflow.sim.tbutil import load_config, run_stream_test, write_result


#: Write enables of the parameter write bus: bnnflow_top's cfg_we, a bare bnn_mvtu's two.
CONFIG_ENABLES = ("cfg_we", "cfg_weight_we", "cfg_threshold_we")


def tie_off_config(dut) -> None:
    """Hold the parameter write enables of the DUT low (if it has them).

    Icarus leaves an undriven top-level input at Z, which the memories' write
    logic would see as an unknown enable; Verilator zero-initializes inputs.
    The streams do not depend on the other cfg_* inputs while the enables are low.
    """
    for name in CONFIG_ENABLES:
        if hasattr(dut, name):
            getattr(dut, name).value = 0


def layer_streams(dut, a: art.Artifact) -> list[int]:
    """Indices k of the layers whose output stream ``y{k}`` the DUT exposes (the network top's inner layers)."""
    return [k for k in range(len(a.layers) - 1) if hasattr(dut, f"y{k}_tvalid")]


async def _record_streams(dut, layers: list[int], records: dict[int, list[tuple[int, int]]]) -> None:
    """Append (cycle, tdata) of every word accepted on each ``y{k}`` stream, from the first edge on."""
    handles = [(k, getattr(dut, f"y{k}_tvalid"), getattr(dut, f"y{k}_tready"), getattr(dut, f"y{k}_tdata"))
               for k in layers]
    cycle = 0
    while True:
        await RisingEdge(dut.clk)
        cycle += 1
        for k, valid, ready, data in handles:
            if str(valid.value) == "1" and str(ready.value) == "1":    # X / Z before reset: no transfer
                records[k].append((cycle, int(data.value)))


def _layer_words(a: art.Artifact, k: int, outputs: np.ndarray) -> list[list[int]]:
    """Stream words of layer k's golden outputs (N, out_elements): PE elements a word, per image."""
    layer = a.layers[k]
    per_image = layer.out_stream_words
    words = packing.words_to_int(outputs.reshape(-1, layer.pe), layer.output_bits)
    return [words[i * per_image:(i + 1) * per_image] for i in range(outputs.shape[0])]


async def artifact_stream_test(dut) -> None:
    tie_off_config(dut)
    cfg = load_config()
    a = art.load(cfg["artifact"])
    images = np.load(cfg["images"])
    first, last = a.layers[0], a.layers[-1]
    in_vectors = packing.pack_input_words(images, first.simd, first.input_bits)
    assert all(len(v) == first.in_stream_words for v in in_vectors)
    check = cfg.get("check", True)
    out_vectors = None
    if check:
        scores = GoldenModel(a).scores(images)
        out_vectors = [packing.words_to_int(s.reshape(-1, last.pe), last.output_bits) for s in scores]
    model_cycles = max(l.cycles_per_image for l in a.layers)
    inner = layer_streams(dut, a)
    records: dict[int, list[tuple[int, int]]] = {k: [] for k in inner}
    if inner:
        cocotb.start_soon(_record_streams(dut, inner, records))
    res = await run_stream_test(dut, in_vectors, out_vectors, cfg, last.out_stream_words, model_cycles)
    scores = [packing.unpack_output_words(o, last.pe, last.output_bits, last.output_signed).tolist()
              for o in res["outputs"]]

    # every inner layer's words: the random phase's images (if it ran), then the timing phase's
    n = len(in_vectors)
    random_phase = n > 0 and (float(cfg.get("idle", 0.0)) > 0 or float(cfg.get("backpressure", 0.0)) > 0)
    m = max(n, int(cfg.get("timing_vectors", 0)))
    order = ([*range(n)] if random_phase else []) + [i % n for i in range(m)]
    trace = GoldenModel(a).trace(images) if check else None
    layer_outputs: dict[str, list] = {}
    layer_cycles: dict[str, float] = {}    # steady-state interval between images on y{k} (timing phase)
    for k in inner:
        layer = a.layers[k]
        per_image = layer.out_stream_words
        got = [w for _, w in records[k]]
        if len(got) != len(order) * per_image:
            raise AssertionError(f"layer {k} output stream y{k}: {len(got)} words, expected "
                                 f"{len(order)} images x {per_image}")
        images_words = [got[j * per_image:(j + 1) * per_image] for j in range(len(order))]
        if trace is not None:
            want = _layer_words(a, k, trace.outputs[k])
            for j, i in enumerate(order):
                if images_words[j] != want[i]:
                    bad = next(w for w in range(per_image) if images_words[j][w] != want[i][w])
                    raise AssertionError(f"layer {k} output stream y{k}, pass image {j} (image {i}) word {bad} "
                                         f"of {per_image}: got 0x{images_words[j][bad]:x}, expected "
                                         f"0x{want[i][bad]:x}")
        done = [records[k][(j + 1) * per_image - 1][0] for j in range(len(order) - m, len(order))]
        half = m // 2
        if m - 1 - half > 0:
            layer_cycles[str(k)] = (done[-1] - done[half]) / (m - 1 - half)
        layer_outputs[str(k)] = [packing.unpack_output_words(images_words[j], layer.pe, layer.output_bits,
                                                              layer.output_signed).tolist() for j in range(n)]
    write_result(cfg, {"scores": scores, "cycles_per_vector": res["cycles_per_vector"],
                       "completion_cycles": res["completion_cycles"], "model_cycles": model_cycles,
                       "layer_outputs": layer_outputs, "layer_cycles": layer_cycles})


@cocotb.test()
async def network_vs_golden(dut):
    """Every output word and TLAST of the network equals the golden model's."""
    await artifact_stream_test(dut)
