"""Fuzzing the artifact loader: a mutated manifest or data file is either refused by name or means the same.

Each example copies a good artifact, applies one mutation (a manifest value
replaced by another type or value, a key deleted, a data file truncated,
extended or bit-flipped, with or without its checksum and size updated) and
loads it. The loader must either raise :class:`ArtifactError` whose message
names the manifest or the file, or load an artifact whose layers, golden
scores and test vectors are exactly those of the original. Any other
exception, or a load that changed the network's meaning, fails.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bnnflow import artifact as art
from bnnflow.golden import GoldenModel
from bnnflow.testing import random_artifact
from bnnflow.writer import read_vectors

ENGINE_FIELDS = ("index", "kind", "in_features", "out_features", "pe", "simd", "input_bits", "weights",
                 "thresholds", "in_features_padded", "nf", "sf", "acc_bits", "threshold_bits", "output_bits",
                 "output_signed")

REPLACEMENTS = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.integers(-(2 ** 40), 2 ** 40),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(["", "x", "../L0_weights.bin", "/etc/passwd",
                                                                    "L1_weights.bin", "1", "xnor_score"]),
    st.just([]), st.just({}), st.just([1, "a"]), st.just({"sha256": "0" * 64, "bytes": 0}))


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz") / "export"
    a = random_artifact(root, seed=9, input_features=20, hidden=(12,), classes=4, input_bits=3, n_vectors=6)
    images, labels, scores = read_vectors(a)
    return root, [tuple(getattr(l, f) for f in ENGINE_FIELDS) for l in a.layers], images, labels, scores


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path into a JSON value (objects and lists), the root excluded."""
    out = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        out.append(prefix + (key,))
        out += _paths(value, prefix + (key,))
    return out


def _copy(tmp_path_factory, original) -> tuple[Path, dict]:
    """A fresh copy of the good export, and its manifest."""
    root = tmp_path_factory.mktemp("fuzz") / "export"
    shutil.copytree(original[0], root)
    return root, json.loads((root / art.MANIFEST).read_text())


def _parent(doc: Any, path: tuple) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


def _check(root: Path, original, rechecksummed: str | None = None) -> None:
    """``rechecksummed``: a data file changed with its checksum updated (a deliberate edit)."""
    _, specs, images, labels, scores = original
    try:
        a = art.load(root)
        got_images, got_labels, got_scores = read_vectors(a)
    except art.ArtifactError as exc:
        msg = str(exc)
        assert str(root) in msg or art.MANIFEST in msg, f"error names no file: {msg}"
        return
    assert [tuple(getattr(l, f) for f in ENGINE_FIELDS) for l in a.layers] == specs, "layers changed silently"
    if rechecksummed is not None:
        # A weight, threshold or vector file edited and re-checksummed is a different network or test set:
        # the loader cannot know, but the stored golden vectors must then betray it (verify compares them),
        # unless the edit changes no score on them.
        golden = GoldenModel(a).scores(got_images)
        assert not np.array_equal(golden, got_scores) or np.array_equal(golden, scores) or rechecksummed.startswith(
            "vectors/labels"), f"{rechecksummed}: edited and re-checksummed, yet golden agrees with changed vectors"
        return
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    np.testing.assert_array_equal(got_scores, scores)
    np.testing.assert_array_equal(GoldenModel(a).scores(images), scores)


#: CI runs a fixed, derandomized sample; BNNFLOW_FUZZ_EXAMPLES=N (with BNNFLOW_FUZZ_RANDOM=1) explores more.
SETTINGS = settings(max_examples=int(os.environ.get("BNNFLOW_FUZZ_EXAMPLES", "120")), deadline=None,
                    derandomize=not os.environ.get("BNNFLOW_FUZZ_RANDOM"),
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(data=st.data())
def test_manifest_mutations(tmp_path_factory, original, data):
    root, manifest = _copy(tmp_path_factory, original)
    path = data.draw(st.sampled_from(_paths(manifest)), label="path")
    parent = _parent(manifest, path)
    op = data.draw(st.sampled_from(["replace", "delete", "nudge"]), label="op")
    if op == "delete":
        del parent[path[-1]]
    elif op == "nudge" and isinstance(parent[path[-1]], int) and not isinstance(parent[path[-1]], bool):
        parent[path[-1]] += data.draw(st.sampled_from([-1, 1, 7, -(2 ** 31)]), label="delta")
    else:
        parent[path[-1]] = data.draw(REPLACEMENTS, label="value")
    (root / art.MANIFEST).write_text(json.dumps(manifest))
    _check(root, original)


@SETTINGS
@given(data=st.data())
def test_data_file_mutations(tmp_path_factory, original, data):
    root, manifest = _copy(tmp_path_factory, original)
    rel = data.draw(st.sampled_from(sorted(manifest["files"])), label="file")
    raw = bytearray((root / rel).read_bytes())
    op = data.draw(st.sampled_from(["truncate", "extend", "flip", "empty"]), label="op")
    if op == "truncate" and raw:
        del raw[-data.draw(st.integers(1, len(raw)), label="n"):]
    elif op == "extend":
        raw += bytes(data.draw(st.integers(1, 9), label="n"))
    elif op == "flip" and raw:
        i = data.draw(st.integers(0, len(raw) - 1), label="byte")
        raw[i] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    else:
        raw = bytearray()
    (root / rel).write_bytes(bytes(raw))
    rechecksummed = None
    if data.draw(st.booleans(), label="update_manifest"):   # a tamperer who also fixes the checksum
        manifest["files"][rel] = {"sha256": art.sha256_file(root / rel), "bytes": len(raw)}
        (root / art.MANIFEST).write_text(json.dumps(manifest))
        rechecksummed = rel
    _check(root, original, rechecksummed)
