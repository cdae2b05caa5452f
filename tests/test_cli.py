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
    # change the model after export: the artifact no longer matches torch
    state = torch.load(run / "model.pt")
    state["head.weight"] = -state["head.weight"]
    torch.save(state, run / "model.pt")
    assert main(["verify", str(run), "--against", "golden"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_verify_rejects_unknown_level(digits_run, capsys):
    assert main(["verify", str(digits_run), "--against", "fpga"]) == 2
    assert "unknown level 'fpga'" in capsys.readouterr().err
