"""``bnnflow run`` (bnnflow.host.run_cmd): accuracy, agreement with golden and throughput on one backend.

Every value is checked against the golden model computed here, from the
export's stored test split.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys

import numpy as np
import pytest

from bnnflow import artifact as art
from bnnflow.golden import GoldenModel, argmax_lowest
from bnnflow.host import BoardNotFoundError, run_cmd
from bnnflow.testing import random_artifact
from bnnflow.writer import read_vectors

VECTORS = 24
THROUGHPUT_KEYS = {"backend", "images", "accelerator_images_per_s", "accelerator_latency_s",
                   "end_to_end_images_per_s", "end_to_end_latency_s", "pack_seconds", "unpack_seconds",
                   "backend_seconds"}


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("run_cmd") / "export"
    random_artifact(root, seed=12, n_vectors=VECTORS, generate=())
    return root


def golden_of(root, limit=None):
    """(labels, golden scores) of the stored test split, computed here."""
    a = art.load(root)
    images, labels, _ = read_vectors(a)
    if limit:
        images, labels = images[:limit], labels[:limit]
    return labels, GoldenModel(a).scores(images)


def backend_or_skip(backend: str) -> None:
    if backend == "board-sim":
        pytest.importorskip("pynq")


@pytest.mark.parametrize("backend", ["golden", "board-sim"])
def test_run_reports_accuracy_agreement_and_throughput(export_dir, backend):
    backend_or_skip(backend)
    labels, golden = golden_of(export_dir)
    accuracy = float(np.mean(argmax_lowest(golden) == labels))
    lines: list[str] = []
    result = run_cmd.run(export_dir, backend, batch=40, echo=lines.append)
    assert {k: result[k] for k in ("export", "backend", "images", "accuracy", "golden_accuracy", "class_agreement",
                                   "score_mismatches", "first_difference", "cycles_per_image")} == {
        "export": str(export_dir), "backend": backend, "images": VECTORS, "accuracy": accuracy,
        "golden_accuracy": accuracy, "class_agreement": 1.0, "score_mismatches": 0, "first_difference": None,
        "cycles_per_image": None}
    throughput = result["throughput"]
    assert set(throughput) == THROUGHPUT_KEYS and throughput["images"] == 40 and throughput["backend"] == backend
    assert (throughput["pack_seconds"] is None) == (backend == "golden")
    assert lines[:3] == [
        f"bnnflow run: {export_dir} on {backend}, {VECTORS} test images",
        f"  accuracy             {accuracy * 100:.2f}%  (golden model: {accuracy * 100:.2f}%)",
        f"  agreement w/ golden  100.00% of predicted classes; integer scores equal on {VECTORS} of {VECTORS} images"]
    assert lines[3].startswith("  throughput           accelerator ") and "for 40 images" in lines[3]
    assert lines[-1] == "PASS: every integer score equals the golden model's"


def test_a_board_that_computes_wrong_is_reported(export_dir, monkeypatch):
    """The simulated board's engine gets two images wrong: the numbers say exactly that, and main() exits 1."""
    pytest.importorskip("pynq")
    from bnnflow.host import simdevice

    labels, golden = golden_of(export_dir)
    wrong_rows = [2, 5]

    def wrong(scores: np.ndarray) -> np.ndarray:
        """Rows 2 and 5 (of a batch, as the device sees it: one DMA transfer) get score 40 in the next class."""
        scores = scores.copy()
        for row in wrong_rows:
            if row < len(scores):
                cls = (argmax_lowest(scores[row:row + 1])[0] + 1) % scores.shape[1]
                scores[row] = 0
                scores[row, cls] = 40  # above every real score (at most 32), within the 7-bit score field
        return scores

    class WrongModel(GoldenModel):
        def scores(self, images):
            return wrong(super().scores(images))

    monkeypatch.setattr(simdevice, "GoldenModel", WrongModel)
    expected = wrong(golden)
    result = run_cmd.run(export_dir, "board-sim", echo=None)
    assert result["score_mismatches"] == 2
    assert result["class_agreement"] == float(np.mean(argmax_lowest(expected) == argmax_lowest(golden))) == 22 / 24
    assert result["accuracy"] == float(np.mean(argmax_lowest(expected) == labels))
    assert result["golden_accuracy"] == float(np.mean(argmax_lowest(golden) == labels))
    cls = int(np.argwhere(expected[2] != golden[2])[0, 0])
    assert result["first_difference"] == (f"board-sim scores differ from golden at image 2, class {cls}: board-sim "
                                          f"{expected[2, cls]}, golden {golden[2, cls]} (2 of 24 images differ)")
    assert run_cmd.report_lines(result)[-1] == f"FAIL: {result['first_difference']}"
    parser = argparse.ArgumentParser()
    run_cmd.add_arguments(parser)
    assert run_cmd.main(parser.parse_args([str(export_dir), "--backend", "board-sim"])) == 1


def test_a_run_folder_and_limit(export_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(export_dir, run / "export")
    (run / "config.json").write_text(json.dumps({"note": "a training run's config"}))
    labels, golden = golden_of(export_dir, limit=5)
    result = run_cmd.run(run, "golden", limit=5, echo=None)
    assert result["images"] == 5 and result["export"] == str(run / "export")
    assert result["accuracy"] == float(np.mean(argmax_lowest(golden) == labels))
    assert result["throughput"]["images"] == 5


def test_main_and_its_arguments(export_dir, capsys):
    parser = argparse.ArgumentParser(prog="bnnflow run", description=run_cmd.DESCRIPTION)
    run_cmd.add_arguments(parser)
    args = parser.parse_args([str(export_dir), "--limit", "4", "--batch", "9"])
    assert (args.path, args.backend, args.bitfile, args.limit, args.sim, args.batch) == (
        str(export_dir), "golden", None, 4, "verilator", 9)
    assert run_cmd.main(args) == 0
    out = capsys.readouterr().out
    assert "on golden, 4 test images" in out and "for 9 images" in out and "PASS" in out
    text = parser.format_help()
    for word in ("RUN_OR_EXPORT", "--backend {golden,rtl,board,board-sim}", "--bitfile", ".signature.json",
                 "--limit", "--sim {verilator,icarus}", "--batch", "steady rate", "Exits 0"):
        assert word in text, word
    for bad in (["x", "--limit", "0"], ["x", "--batch", "two"], ["x", "--backend", "fpga"], [""]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)
    err = capsys.readouterr().err
    assert "must be a positive integer, got '0'" in err and "expected a positive integer, got 'two'" in err


def test_board_without_a_board_fails_fast_naming_what_is_missing(export_dir, tmp_path, monkeypatch):
    pytest.importorskip("pynq")
    with pytest.raises(BoardNotFoundError, match=r"^--backend board cannot run here: no PYNQ board found \(pynq: .*\); "
                                                 r"no bitstream given and none beside the export \(bnnflow-\*\.bit in .*\): pass "
                                                 r"--bitfile path/to/bnnflow.bit \(with its \.hwh of the same name "
                                                 r"beside it\), or build one with `make bitstream RUN=\.\.\.`\. "
                                                 r"Without a board, --backend "
                                                 r"golden, rtl or board-sim run the same images$"):
        run_cmd.run(export_dir, "board", echo=None)
    bit = tmp_path / "design.bit"
    bit.write_bytes(b"\0")
    with pytest.raises(BoardNotFoundError, match=r"design.hwh: missing; pynq.Overlay needs"):
        run_cmd.run(export_dir, "board", bitfile=bit, echo=None)
    monkeypatch.setitem(sys.modules, "pynq", None)
    with pytest.raises(BoardNotFoundError, match=r"^--backend board cannot run here: pynq cannot be imported \(.*\): "
                                                 r"run on a PYNQ board, inside its Python environment .*; "
                                                 r".*nothing.bit: bitstream not found\. Without a board"):
        run_cmd.run(export_dir, "board", bitfile=tmp_path / "nothing.bit", echo=None)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"backend": "fpga"}, ValueError, "unknown backend 'fpga'; choose one of golden, rtl, board, board-sim"),
    ({"limit": 0}, ValueError, "limit=0: expected a positive integer or None"),
    ({"batch": True}, ValueError, "batch=True: expected a positive integer or None"),
    ({"sim": "xsim"}, ValueError, "unknown simulator 'xsim'; choose one of verilator, icarus"),
    ({"bitfile": "x.bit"}, ValueError, "a bitfile (x.bit) is for --backend board; backend 'golden' has none"),
])
def test_bad_arguments_are_named(export_dir, kwargs, error, message):
    with pytest.raises(error) as info:
        run_cmd.run(export_dir, **{"backend": "golden", **kwargs}, echo=None)
    assert str(info.value) == message


def test_a_folder_that_is_no_export(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing: neither an export folder \(no manifest.json\) nor a "
                                                r"training run with one .*; run `bnnflow export RUN` first"):
        run_cmd.run(tmp_path / "nothing", echo=None)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    with pytest.raises(art.ArtifactError, match=r"run/export/manifest.json: manifest not found"):
        run_cmd.run(run, echo=None)


def test_the_bitstream_beside_the_export_is_found(tmp_path):
    from bnnflow import artifact as art
    from bnnflow.host.backend_board import BoardError, resolve_bitfile

    export = tmp_path / "run" / "export"
    artifact = random_artifact(export, seed=13, n_vectors=2, generate=())
    bit = tmp_path / "run" / "bnnflow-pynq-z2-rtl.bit"
    bit.write_bytes(b"\0")
    bit.with_suffix(".hwh").write_text("<hwh/>")
    assert resolve_bitfile(art.load(export), None) == bit.resolve()
    (tmp_path / "run" / "bnnflow-kv260-hls.bit").write_bytes(b"\0")
    with pytest.raises(BoardError, match=r"several bitstreams beside the export \(bnnflow-kv260-hls.bit, "
                                         r"bnnflow-pynq-z2-rtl.bit\): pass bitfile= to choose one"):
        resolve_bitfile(artifact, None)
