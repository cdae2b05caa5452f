"""The bnnflow command: help, errors, and verify's exit code on mismatch."""

import json
import shutil

import pytest
import torch

from bnnflow.cli import main


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("train", "export", "verify"):
        assert command in out


def test_bad_hidden_sizes(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--hidden", "256,x", "--out", "unused"])
    assert "expected comma-separated integers" in capsys.readouterr().err


def test_export_of_missing_run(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nothing")]) == 2
    assert "not a training run" in capsys.readouterr().err


def test_unknown_dataset(tmp_path, capsys):
    assert main(["train", "--dataset", "cifar", "--out", str(tmp_path / "r")]) == 2
    assert "unknown dataset 'cifar'" in capsys.readouterr().err


def test_verify_fails_when_torch_and_artifact_disagree(digits_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    assert main(["export", str(run)]) == 0
    assert main(["verify", str(run), "--against", "golden"]) == 0
    assert "PASS" in capsys.readouterr().out
    # change the model after export: the export is refused as stale, naming the cause
    state = torch.load(run / "model.pt")
    state["head.weight"] = -state["head.weight"]
    torch.save(state, run / "model.pt")
    assert main(["verify", str(run), "--against", "golden"]) == 2
    assert "export is older than the model" in capsys.readouterr().err
    # with the recorded model hash forged, the integer scores still tell: FAIL naming image and class
    from bnnflow import artifact as art

    manifest = json.loads((run / "export" / "manifest.json").read_text())
    manifest["source"]["sha256"] = art.sha256_file(run / "model.pt")
    (run / "export" / "manifest.json").write_text(json.dumps(manifest))
    assert main(["verify", str(run), "--against", "golden"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "golden scores differ from torch at image 0, class " in out, out


def test_verify_rejects_unknown_level(digits_run, capsys):
    assert main(["verify", str(digits_run), "--against", "fpga"]) == 2
    assert "unknown level 'fpga'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def wide_run(tmp_path_factory):
    """A digits BNN 64-256-256-10, trained briefly: hidden layers wide enough for SIMD 128 and 256."""
    out = tmp_path_factory.mktemp("runs") / "wide"
    assert main(["train", "--dataset", "digits", "--hidden", "256,256", "--epochs", "3", "--seed", "2",
                 "--out", str(out), "--quiet"]) == 0
    return out


@pytest.mark.rtl
@pytest.mark.hls
@pytest.mark.slow
def test_simd128_and_simd256_verify_at_every_level(wide_run, tmp_path, capsys):
    """SIMD > 64 (string literals in HLS) through golden, RTL and HLS with the CLI, bit for bit.

    Slow (a 64-256-256-10 training, a bulk Verilator build and an HLS compile of its own). The default
    suite has each part: SIMD 128/256 on both simulators and the bulk harness (test_rtl_network.py
    simd128-256-pad, test_rtl_bulk.py wide-in-wide-out), the HLS csim of a SIMD 128 network and its
    wide literals read back (test_hls_wide.py), and `export --folding` -> `verify` through the CLI
    (test_fold.py, test_golden_vs_torch.py).
    """
    from bnnflow.sim import toolchain

    toolchain.pytest_require("verilator")
    run = tmp_path / "run"
    shutil.copytree(wide_run, run)
    fold = tmp_path / "fold.json"
    fold.write_text(json.dumps({"layers": [{"pe": 16, "simd": 64}, {"pe": 16, "simd": 128},
                                           {"pe": 10, "simd": 256}]}))
    assert main(["export", str(run), "--folding", str(fold)]) == 0
    out = capsys.readouterr().out
    assert "SIMD=128" in out and "SIMD=256" in out
    assert main(["verify", str(run), "--against", "golden,rtl,hls", "--limit", "120"]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and out.count("100.00%") >= 3, out


def test_export_refuses_a_folding_beyond_the_hls_limit(idx_dir, tmp_path, capsys):
    """784 8-bit pixels at SIMD 784 = 6272-bit words: refused for HLS with the cause, accepted for RTL only."""
    run = tmp_path / "idx"
    assert main(["train", "--dataset", f"idx:{idx_dir}", "--hidden", "16", "--epochs", "1",
                 "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    fold = tmp_path / "fold.json"
    fold.write_text(json.dumps({"layers": [{"pe": 16, "simd": 784}, {"pe": 4, "simd": 16}]}))
    assert main(["export", str(run), "--folding", str(fold)]) == 2
    err = capsys.readouterr().err
    assert "layer 0" in err and "SIMD=784 x 8 input bit(s)" in err and "6272 bits" in err and "4096" in err
    assert "--generate rtl" in err
    assert not (run / "export").exists()
    assert main(["export", str(run), "--folding", str(fold), "--generate", "rtl"]) == 0
    assert (run / "export" / "rtl").is_dir() and not (run / "export" / "hls").exists()
    assert main(["verify", str(run), "--against", "golden"]) == 0


def test_export_generate_option_is_checked(digits_run, capsys):
    with pytest.raises(SystemExit):
        main(["export", str(digits_run), "--generate", "vhdl"])
    assert "expected a comma-separated subset of rtl,hls, or none, got 'vhdl'" in capsys.readouterr().err


def _rewrite_checksum(export, rel):
    """Update manifest.json's sha256 and bytes of ``rel`` so that the tampered artifact still loads."""
    from bnnflow import artifact as art

    manifest = json.loads((export / "manifest.json").read_text())
    manifest["files"][rel] = {"sha256": art.sha256_file(export / rel), "bytes": (export / rel).stat().st_size}
    (export / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def test_verify_compares_integer_scores_not_only_predictions(digits_run, tmp_path, capsys):
    """One flipped weight bit of the score layer that changes scores but no prediction: verify fails and
    names the first differing image and class with both values (it used to say PASS)."""
    import numpy as np

    from bnnflow import artifact as art
    from bnnflow.golden import GoldenModel, argmax_lowest
    from bnnflow.verify import torch_scores
    from bnnflow.writer import read_vectors

    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    assert main(["export", str(run), "--generate", "rtl"]) == 0
    export = run / "export"
    manifest = json.loads((export / "manifest.json").read_text())
    score_layer = manifest["layers"][-1]
    assert score_layer["kind"] == "xnor_score"
    rel = score_layer["weights"]
    original = (export / rel).read_bytes()
    images, _, stored = read_vectors(art.load(export))
    reference = torch_scores(run, images)
    assert np.array_equal(stored, reference)
    found = None
    for bit in range(8 * len(original)):      # a bit that changes scores but no prediction
        data = bytearray(original)
        data[bit // 8] ^= 1 << (bit % 8)
        (export / rel).write_bytes(bytes(data))
        golden = GoldenModel(art.load(export, verify_checksums=False)).scores(images)
        if not np.array_equal(golden, reference) and np.array_equal(argmax_lowest(golden), argmax_lowest(reference)):
            found = golden
            break
    assert found is not None, "no weight bit changes scores without changing a prediction"
    _rewrite_checksum(export, rel)
    capsys.readouterr()
    assert main(["verify", str(run), "--against", "golden"]) == 1
    out = capsys.readouterr().out
    image, cls = (int(v) for v in np.argwhere(found != reference)[0])
    expected = (f"golden scores differ from torch at image {image}, class {cls}: "
                f"golden {found[image, cls]}, torch {reference[image, cls]}")
    assert expected in out and "FAIL" in out and "PASS" not in out, out
    assert "100.00%" in out              # every prediction still agrees: only the scores tell

    # the stored test vectors rewritten to the tampered golden scores: torch still catches it
    vectors = manifest["vectors"]["scores"]
    found.astype("<i4").tofile(export / vectors)
    _rewrite_checksum(export, vectors)
    assert main(["verify", str(run), "--against", "golden"]) == 1
    out = capsys.readouterr().out
    assert expected in out and "stored" not in out, out


def test_verify_names_stale_vectors(digits_run, tmp_path, capsys):
    """Scores stored at export that golden does not reproduce: the first differing image and class."""
    import numpy as np

    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    assert main(["export", str(run), "--generate", "rtl"]) == 0
    export = run / "export"
    rel = json.loads((export / "manifest.json").read_text())["vectors"]["scores"]
    scores = np.fromfile(export / rel, dtype="<i4")
    scores[13] += 2
    scores.tofile(export / rel)
    _rewrite_checksum(export, rel)
    capsys.readouterr()
    assert main(["verify", str(run)]) == 1
    out = capsys.readouterr().out
    c = scores.size // 360
    assert f"at image {13 // c}, class {13 % c}" in out and "stored" in out and "FAIL" in out, out
