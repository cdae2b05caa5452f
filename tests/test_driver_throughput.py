"""BnnDriver.throughput_test: images/s and latency, accelerator alone and end to end, on golden and board-sim."""

from __future__ import annotations

import numpy as np
import pytest

from bnnflow import artifact as art
from bnnflow.golden import GoldenModel
from bnnflow.host import BnnDriver, BatchTiming
from bnnflow.testing import random_artifact
from bnnflow.writer import read_vectors

KEYS = {"backend", "images", "accelerator_images_per_s", "accelerator_latency_s", "end_to_end_images_per_s",
        "end_to_end_latency_s", "pack_seconds", "unpack_seconds", "backend_seconds", "score_mismatches", "timing"}
VECTORS = 16


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("throughput") / "export"
    random_artifact(root, seed=5, n_vectors=VECTORS, generate=())
    return root


def check_rates(report: dict, backend: str, images: int) -> None:
    """The parts every backend reports, and how they relate."""
    assert set(report) == KEYS
    assert report["backend"] == backend and report["images"] == images
    timing = report["timing"]
    assert isinstance(timing, BatchTiming) and timing.backend == backend and timing.images == images
    assert report["backend_seconds"] == timing.seconds > 0
    for part in ("accelerator", "end_to_end"):
        latency = report[f"{part}_latency_s"]
        assert latency > 0
        assert report[f"{part}_images_per_s"] == pytest.approx(images / latency)
    # the accelerator is part of the backend's run, which is part of the end-to-end call
    assert report["accelerator_latency_s"] <= report["backend_seconds"] <= report["end_to_end_latency_s"]


def test_golden_default_images_are_the_stored_vectors(export_dir):
    with BnnDriver(export_dir, backend="golden") as driver:
        report = driver.throughput_test()
    check_rates(report, "golden", VECTORS)
    # golden: the accelerator is the computation, the backend's whole run; no separate packing
    assert report["accelerator_latency_s"] == report["backend_seconds"]
    assert report["pack_seconds"] is None and report["unpack_seconds"] is None
    assert report["score_mismatches"] == 0
    assert report["timing"].details == {}


@pytest.mark.parametrize("batch", [1, 5, 16, 40])
def test_batch_repeats_or_cuts_the_vectors(export_dir, batch):
    """40 > 16 stored vectors: repeated in order, so the stored golden scores (repeated) still match."""
    driver = BnnDriver(export_dir, backend="golden")
    report = driver.throughput_test(batch=batch, warmup=False)
    check_rates(report, "golden", batch)
    assert report["score_mismatches"] == 0


def test_given_images_are_checked_and_repeated(export_dir):
    driver = BnnDriver(export_dir, backend="golden")
    images = read_vectors(art.load(export_dir))[0][:3]
    report = driver.throughput_test(images, batch=7)
    check_rates(report, "golden", 7)
    assert report["score_mismatches"] is None  # no golden scores are known for the caller's images
    assert driver.throughput_test(images.reshape(3, 64).tolist())["images"] == 3  # batch None: all, once
    with pytest.raises(ValueError, match=r"images: values must be unsigned 5-bit integers in 0..31"):
        driver.throughput_test(np.full((2, 64), 40, np.uint8))


def test_board_sim_reports_packing_and_transfers(export_dir):
    pytest.importorskip("pynq")
    with BnnDriver(export_dir, backend="board-sim", max_batch=16) as driver:
        report = driver.throughput_test(batch=40)
    check_rates(report, "board-sim", 40)
    details = report["timing"].details
    assert details["transfers"] == 3  # 16 + 16 + 8 images
    assert report["score_mismatches"] == 0
    # the board backend times packing, the DMA/engine and unpacking of every transfer apart
    assert isinstance(report["pack_seconds"], float) and report["pack_seconds"] > 0
    assert isinstance(report["unpack_seconds"], float) and report["unpack_seconds"] > 0
    assert report["pack_seconds"] == details["pack_seconds"]
    assert report["unpack_seconds"] == details["unpack_seconds"]
    assert report["accelerator_latency_s"] == details["transfer_seconds"]
    # double buffering: packing transfer i+1 and unpacking transfer i-1 overlap transfer i, so the parts
    # may add up to more than the whole, but each fits inside it
    for part in ("pack_seconds", "transfer_seconds", "unpack_seconds"):
        assert details[part] <= report["backend_seconds"]


def test_board_sim_details_are_per_call(export_dir):
    """Each run starts its sums at zero: a second, smaller batch does not carry the first one's seconds."""
    pytest.importorskip("pynq")
    driver = BnnDriver(export_dir, backend="board-sim")
    images = read_vectors(driver.artifact)[0]
    driver.scores(np.repeat(images, 50, axis=0))
    big = dict(driver.last_timing.details)
    driver.scores(images[:1])
    small = driver.last_timing.details
    assert set(small) == {"transfers", "pack_seconds", "transfer_seconds", "unpack_seconds"}
    assert small["transfers"] == 1
    total = small["pack_seconds"] + small["transfer_seconds"] + small["unpack_seconds"]
    assert 0 < total <= driver.last_timing.seconds
    assert big["transfers"] == 1 and big["pack_seconds"] > 0


def test_bad_arguments_are_named(export_dir, tmp_path):
    driver = BnnDriver(export_dir, backend="golden")
    with pytest.raises(ValueError, match=r"batch=0: expected a positive integer \(images to time\) or None"):
        driver.throughput_test(batch=0)
    with pytest.raises(TypeError, match=r"batch=True \(bool\): expected a positive integer"):
        driver.throughput_test(batch=True)
    with pytest.raises(TypeError, match=r"batch=2.0 \(float\): expected a positive integer"):
        driver.throughput_test(batch=2.0)
    with pytest.raises(TypeError, match=r"warmup=1 \(int\): expected True or False"):
        driver.throughput_test(warmup=1)
    with pytest.raises(ValueError, match="images is an empty batch; a throughput test needs at least one image"):
        driver.throughput_test(np.zeros((0, 64), np.uint8))
    empty = random_artifact(tmp_path / "novectors", seed=5, n_vectors=0, generate=())
    with pytest.raises(ValueError, match=r"novectors: the artifact stores no test vectors \(vectors.count is 0\); "
                                         r"pass images= to time"):
        BnnDriver(empty, backend="golden").throughput_test()


def test_board_packs_the_next_transfer_while_the_accelerator_runs(export_dir):
    """Double buffering: transfer i+1 is packed into the other buffer before transfer i is waited for."""
    pytest.importorskip("pynq")
    with BnnDriver(export_dir, backend="board-sim", max_batch=4) as driver:
        backend, events = driver.backend, []
        for name in ("_pack", "_launch", "_finish", "_unpack"):
            real = getattr(backend, name)

            def traced(*args, _real=real, _name=name):
                events.append((_name, args[-1] if _name != "_finish" else args[1]))  # (step, slot)
                return _real(*args)
            setattr(backend, name, traced)
        x = np.random.default_rng(5).integers(0, 1 << driver.input_bits, (10, driver.input_features), dtype=np.uint8)
        np.testing.assert_array_equal(driver.scores(x), GoldenModel(driver.artifact).scores(x))
    assert events == [("_pack", 0), ("_launch", 0),
                      ("_pack", 1), ("_finish", 0), ("_launch", 1), ("_unpack", 0),
                      ("_pack", 0), ("_finish", 1), ("_launch", 0), ("_unpack", 1),
                      ("_finish", 0), ("_unpack", 0)]
