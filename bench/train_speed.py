"""Training speed per method: seconds per epoch relative to float, and where the time goes.

    .venv/bin/python bench/train_speed.py                          # digits, MLP 64-256-256-10, six methods
    .venv/bin/python bench/train_speed.py --profile float bnn      # + a torch.profiler breakdown of an epoch
    .venv/bin/python bench/train_speed.py --methods float bnn bnn:bn=shift,optim=shift-adamax
    .venv/bin/python bench/train_speed.py --synthetic 4096 --hidden 1024,1024 --epochs 3 --rounds 2
                                                                   # 784-1024-1024-10 on synthetic 28x28 images
    .venv/bin/python bench/train_speed.py --json after.json --baseline before.json    # + a 'vs before' column
    .venv/bin/python bench/train_speed.py --pool after*.json --baseline before*.json  # pool saved runs

Every run is a real `bnnflow train` (bnnflow.cli.main, so each method gets its
paper defaults exactly as the command applies them) with a fixed seed, in this
process, with one torch thread by default. The first epoch of every run is a
warm-up and is not timed; the remaining epochs of all --rounds runs of a method
are pooled, and the table shows the best and the median epoch. The methods run
interleaved (round 1: all methods, round 2: all methods, ...) so that load from
other jobs on a shared machine hits them alike.

Wall seconds per epoch are the ones train() itself records in metrics.json
(the training loop only, evaluation excluded). CPU seconds per epoch are
measured alongside by a thin wrapper around the model's train() call (start of
an epoch) and the LR scheduler's step() (its end): on a loaded machine they
are less noisy than wall time.

--profile SETTING ... re-runs those settings for --profile-epochs epochs under
torch.profiler, with record_function labels around the phases of a training
step (forward, loss, backward, optimizer step, zero_grad, weight clipping, and
the per-epoch evaluation, which is left out of the shares) and reports each
phase's share of the epoch, what it spends its time in, and the top operators
by self time. The profiler adds a few microseconds per operator, so the
profiled epoch is slower than the timed one; the shares are of the profiled
epoch.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import struct
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: The six methods with their paper defaults (no options).
DEFAULT_METHODS = ["float", "binaryconnect", "bnn", "xnor", "dorefa", "wage"]

#: record_function labels of the training-step phases (bnnflow.model.train's loop, instrumented from outside).
PHASES = ("forward", "loss", "backward", "optimizer.step", "zero_grad", "clip_weights")


def parse_setting(text: str) -> tuple[str, dict[str, str]]:
    """``METHOD`` or ``METHOD:key=value,key=value`` (``bnn:bn=shift,optim=shift-adamax``) -> (method, options)."""
    method, _, rest = text.partition(":")
    options: dict[str, str] = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key or not value:
            raise argparse.ArgumentTypeError(f"setting {text!r}: option {item!r} is not key=value "
                                             f"(e.g. bnn:bn=shift,optim=shift-adamax)")
        options[key.replace("_", "-")] = value
    return method, options


def setting_name(method: str, options: dict[str, str]) -> str:
    return method + ("" if not options else ":" + ",".join(f"{k}={v}" for k, v in options.items()))


def write_synthetic_idx(directory: Path, n_train: int, seed: int, classes: int = 10) -> None:
    """MNIST-shaped synthetic data (28x28 uint8, ``classes`` labels) as the four IDX files ``--dataset idx:`` reads.

    Each class is a random template plus noise, so the nets learn something; only the
    shapes matter for the timing. The test set is a fifth of the training set's size.
    """
    rng = np.random.default_rng(seed)
    templates = rng.integers(0, 200, size=(classes, 28, 28))

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.arange(n) % classes          # every class present in both splits
        rng.shuffle(labels)
        images = np.clip(templates[labels] + rng.integers(0, 56, size=(n, 28, 28)), 0, 255)
        return images.astype(np.uint8), labels.astype(np.uint8)

    def write(name: str, array: np.ndarray) -> None:
        header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
        (directory / name).write_bytes(header + array.tobytes())

    for split, n in (("train", n_train), ("t10k", max(classes, n_train // 5))):
        images, labels = make(n)
        write(f"{split}-images-idx3-ubyte", images)
        write(f"{split}-labels-idx1-ubyte", labels)


@contextlib.contextmanager
def patched(module: Any, name: str, value: Any) -> Iterator[None]:
    """Temporarily replace ``module.name`` (instrumentation only; restored on exit)."""
    old = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, old)


@contextlib.contextmanager
def cpu_clock(epochs_cpu: list[float]) -> Iterator[None]:
    """Append each training epoch's process CPU seconds to ``epochs_cpu`` during a train() call.

    bnnflow.model.train's loop calls model.train() at the start of an epoch and
    scheduler.step() right before it stops its own wall clock; a wrapper around
    each reads time.process_time() there. Nothing else in the loop changes.
    """
    import bnnflow.model.train as train_module

    build, make_scheduler = train_module.build_model, train_module.make_scheduler
    start: list[float] = []

    def build_model(config):
        model = build(config)
        plain_train = model.train

        def train(mode: bool = True):
            if mode:
                start.append(time.process_time())
            return plain_train(mode)

        model.train = train
        return model

    def scheduler(*args, **kwargs):
        sched = make_scheduler(*args, **kwargs)
        plain_step = sched.step

        def step(*a, **k):
            epochs_cpu.append(time.process_time() - start[-1])
            return plain_step(*a, **k)

        sched.step = step
        return sched

    with patched(train_module, "build_model", build_model), patched(train_module, "make_scheduler", scheduler):
        yield


def run_train(method: str, options: dict[str, str], args: argparse.Namespace, dataset: str, out: Path,
              epochs: int) -> dict[str, Any]:
    """One `bnnflow train` in this process; returns metrics.json with ``cpu_seconds`` per epoch added."""
    from bnnflow.cli import main as bnnflow_main

    cmd = ["train", "--dataset", dataset, "--method", method, "--hidden", args.hidden, "--epochs", str(epochs),
           "--seed", str(args.seed), "--quiet", "--out", str(out)]
    if args.batch_size:
        cmd += ["--batch-size", str(args.batch_size)]
    for key, value in options.items():
        cmd += ["--" + key, value]
    cpu: list[float] = []
    text = io.StringIO()
    with cpu_clock(cpu), contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
        status = bnnflow_main(cmd)
    if status != 0:
        raise SystemExit(f"bnnflow {' '.join(cmd)} failed:\n{text.getvalue()}")
    metrics = json.loads((out / "metrics.json").read_text())
    for record, seconds in zip(metrics["epochs"], cpu):
        record["cpu_seconds"] = seconds
    metrics["batch_size"] = json.loads((out / "config.json").read_text())["batch_size"]
    return metrics


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimizer steps in one epoch (train() skips a last batch of fewer than 2 images)."""
    full, rest = divmod(n_train, batch_size)
    return full + (rest >= 2)


# ---------------------------------------------------------------------------
# Profile
# ---------------------------------------------------------------------------


def _labelled(fn: Callable, label: str) -> Callable:
    from torch.profiler import record_function

    def inner(*a, **k):
        with record_function(label):
            return fn(*a, **k)

    return inner


def profile_run(method: str, options: dict[str, str], args: argparse.Namespace, dataset: str, out: Path):
    """(metrics, profiler events) of one train() run with every phase of a training step labelled."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    import bnnflow.model.train as train_module

    build, get_loss = train_module.build_model, train_module.get_loss

    def build_model(config):
        model = build(config)
        model.forward = _labelled(model.forward, "forward")
        return model

    # torch.optim labels step() and zero_grad() itself ("Optimizer.step#Adam.step").
    with contextlib.ExitStack() as stack:
        stack.enter_context(patched(train_module, "build_model", build_model))
        stack.enter_context(patched(train_module, "get_loss", lambda name: _labelled(get_loss(name), "loss")))
        stack.enter_context(patched(train_module, "evaluate", _labelled(train_module.evaluate, "evaluate")))
        stack.enter_context(patched(train_module, "clip_weights",
                                    _labelled(train_module.clip_weights, "clip_weights")))
        stack.enter_context(patched(torch.Tensor, "backward", _labelled(torch.Tensor.backward, "backward")))
        prof = stack.enter_context(profile(activities=[ProfilerActivity.CPU]))
        metrics = run_train(method, options, args, dataset, out, args.profile_epochs)
    return metrics, prof.events()


def _phase(name: str) -> str | None:
    """The phase a top-level profiler event labels, or None for an unlabelled op."""
    if name in PHASES or name == "evaluate":
        return name
    if name.startswith("Optimizer.step#"):
        return "optimizer.step"
    if name.startswith("Optimizer.zero_grad#"):
        return "zero_grad"
    return None


def _short(name: str) -> str:
    """Backward nodes as the autograd engine runs them, by node name (``MmBackward0``)."""
    return name.replace("autograd::engine::evaluate_function: ", "")


def summarize_profile(events, epochs: int) -> dict[str, Any]:
    """Per phase: total, self (outside any op: Python and autograd glue) and first-level children, in ms/epoch;
    and the operators' self time over the training phases. Events under ``evaluate`` are left out."""
    phase_total: dict[str, float] = defaultdict(float)
    phase_children: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    op_self: dict[str, float] = defaultdict(float)
    op_calls: dict[str, int] = defaultdict(int)
    outside = 0.0           # top-level ops outside any phase (batch indexing, loss.item, argmax, isfinite ...)
    for e in events:
        chain = []
        node = e
        while node is not None:
            chain.append(node)
            node = node.cpu_parent
        top = chain[-1]
        phase = _phase(top.name)
        if phase == "evaluate":
            continue
        if e is top:
            if phase is None:
                outside += e.cpu_time_total
            else:
                phase_total[phase] += e.cpu_time_total
            continue
        if len(chain) == 2 and phase is not None:      # a first-level child of a phase
            phase_children[phase][_short(e.name)] += e.cpu_time_total
        op_self[e.name] += e.self_cpu_time_total
        op_calls[e.name] += 1
    per = 1e-3 / epochs                                 # us over the run -> ms per epoch
    return {
        "phases": {p: phase_total.get(p, 0.0) * per for p in PHASES},
        "children": {p: {k: v * per for k, v in phase_children[p].items()} for p in PHASES},
        "outside_phases": outside * per,
        "op_self": {k: v * per for k, v in op_self.items()},
        "op_calls": {k: v / epochs for k, v in op_calls.items()},
    }


def print_profile(name: str, summary: dict[str, Any], epoch_ms: float, plain_ms: float | None, steps: int,
                  top: int) -> None:
    """The phase table and the top operators of one profiled setting (shares of the profiled epoch)."""
    over = f" ({plain_ms:.0f} ms without the profiler)" if plain_ms else ""
    print(f"\nprofile {name}: {steps} steps/epoch, {epoch_ms:.0f} ms/epoch under the profiler{over}")
    print(f"  {'phase':<16}{'ms/epoch':>9}{'share':>7}   spent in (ms/epoch; 'self' = Python and glue outside ops)")
    for phase in PHASES:
        total = summary["phases"][phase]
        children = summary["children"][phase]
        self_ms = total - sum(children.values())
        parts = sorted(children.items(), key=lambda kv: -kv[1])
        shown = [f"{k} {v:.1f}" for k, v in parts[:5] if v >= 0.05 * total]
        rest = total - self_ms - sum(v for k, v in parts[:5] if v >= 0.05 * total)
        text = ", ".join([f"self {self_ms:.1f}"] + shown + ([f"other {rest:.1f}"] if rest >= 0.05 else []))
        print(f"  {phase:<16}{total:9.1f}{100 * total / epoch_ms:6.1f}%   {text}")
    loop = epoch_ms - sum(summary["phases"].values())
    print(f"  {'rest of loop':<16}{loop:9.1f}{100 * loop / epoch_ms:6.1f}%   batch indexing, to_tensor, loss.item(), "
          f"isfinite, argmax, Python loop ({summary['outside_phases']:.1f} in top-level ops)")
    print(f"  top operators by self time (training phases; ms/epoch, share, calls/step):")
    ops = sorted(summary["op_self"].items(), key=lambda kv: -kv[1])[:top]
    for op, ms in ops:
        shown = op.replace("autograd::engine::evaluate_function: ", "engine: ")[:44]
        print(f"    {shown:<44}{ms:8.1f}{100 * ms / epoch_ms:6.1f}%{summary['op_calls'][op] / steps:7.1f}")


# ---------------------------------------------------------------------------
# Table
# ---------------------------------------------------------------------------


def read_runs(paths: list[str], option: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Pool the settings of several --json files (same network and dataset): (meta, {setting: {epochs, steps}})."""
    meta: dict[str, Any] | None = None
    pooled: dict[str, dict[str, Any]] = {}
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
            run_meta, settings = data["meta"], data["settings"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SystemExit(f"{option} {path}: not a --json file of bench/train_speed.py ({exc})") from None
        if meta is None:
            meta = run_meta
        for key in ("dataset", "hidden", "batch_size", "threads"):
            if run_meta.get(key) != meta.get(key):
                raise SystemExit(f"{option} {path}: field meta.{key} is {run_meta.get(key)!r}, but {paths[0]} "
                                 f"has {meta.get(key)!r}: only runs of the same network and data pool")
        for name, entry in settings.items():
            slot = pooled.setdefault(name, {"epochs": [], "steps_per_epoch": entry["steps_per_epoch"]})
            slot["epochs"] += entry["epochs"]
    return meta or {}, pooled


def print_table(pooled: dict[str, dict[str, Any]], baseline: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    """Best and median wall and CPU seconds per epoch, ms/step and the ratio to float; returns them by setting."""

    def stats(name: str, key: str) -> tuple[float, float]:
        values = [e[key] for e in pooled[name]["epochs"]]
        return min(values), statistics.median(values)

    ref_cpu = stats("float", "cpu_seconds")[0]
    counts = sorted({len(v["epochs"]) for v in pooled.values()})
    head = (f"{'setting':<34}{'steps':>6}{'wall s/epoch':>14}{'(median)':>9}{'CPU s/epoch':>13}{'(median)':>9}"
            f"{'ms/step':>9}{'vs float':>9}")
    if baseline:
        head += f"{'vs before':>11}"
    print(f"\ntimed epochs per setting: {'/'.join(map(str, counts))}; best and median; 'ms/step', 'vs float'"
          + (" and 'vs before'" if baseline else "") + " use the best CPU time")
    print(head)
    table = {}
    for name, entry in pooled.items():
        steps = entry["steps_per_epoch"]
        wall, cpu = stats(name, "seconds"), stats(name, "cpu_seconds")
        line = (f"{name:<34}{steps:6d}{wall[0]:14.3f}{wall[1]:9.3f}{cpu[0]:13.3f}{cpu[1]:9.3f}"
                f"{1000 * cpu[0] / steps:9.2f}{cpu[0] / ref_cpu:8.2f}x")
        if baseline:
            before = baseline.get(name)
            best_before = min(e["cpu_seconds"] for e in before["epochs"]) if before else None
            line += f"{cpu[0] / best_before:10.2f}x" if best_before else f"{'-':>11}"
        print(line)
        table[name] = {"wall_best": wall[0], "wall_median": wall[1], "cpu_best": cpu[0], "cpu_median": cpu[1],
                       "vs_float_cpu": cpu[0] / ref_cpu}
    return table


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", type=parse_setting, metavar="SETTING",
                        help="settings to time: METHOD, or METHOD:key=value,... with `bnnflow train` options "
                             "(e.g. bnn:bn=shift,optim=shift-adamax binaryconnect:variant=stoch); default: "
                             "the six methods with their paper defaults. float is added as the baseline")
    parser.add_argument("--dataset", default="digits",
                        help="digits, mnist or idx:DIR, as `bnnflow train --dataset` (default digits)")
    parser.add_argument("--synthetic", type=int, metavar="N",
                        help="instead of --dataset: N synthetic 28x28 images (784 inputs, 10 classes, N/5 "
                             "test images) written as IDX files to a temporary folder")
    parser.add_argument("--hidden", default="256,256", help="MLP hidden sizes (default 256,256: the demo net)")
    parser.add_argument("--batch-size", type=int, help="minibatch size (default: bnnflow train's, 64)")
    parser.add_argument("--epochs", type=int, default=4,
                        help="epochs per run; the first is a warm-up and not timed (default 4)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="runs per setting, interleaved across settings (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--profile", nargs="+", default=[], metavar="SETTING",
                        help="settings from --methods to profile, as written there (e.g. --profile float bnn); "
                             "default none")
    parser.add_argument("--profile-epochs", type=int, default=2,
                        help="epochs of each profiled run; every one is profiled (default 2)")
    parser.add_argument("--top", type=int, default=12, help="operators listed per profile (default 12)")
    parser.add_argument("--json", metavar="FILE", help="also write every epoch's times and the profiles here")
    parser.add_argument("--baseline", nargs="+", metavar="FILE",
                        help="--json files of earlier runs (e.g. before a change), pooled: adds a column "
                             "comparing each setting's best CPU s/epoch with their best")
    parser.add_argument("--pool", nargs="+", metavar="FILE",
                        help="train nothing: print the table of these --json files' epochs pooled (runs taken "
                             "at different times, to get past load from other jobs on a shared machine)")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error(f"--epochs must be at least 2 (the first is a warm-up), got {args.epochs}")
    for name in ("rounds", "threads", "profile_epochs", "top"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    if args.synthetic is not None and args.synthetic < 10:
        parser.error(f"--synthetic must be at least 10 images (one per class), got {args.synthetic}")
    baseline = read_runs(args.baseline, "--baseline")[1] if args.baseline else None
    if args.pool:
        meta, pooled = read_runs(args.pool, "--pool")
        if "float" not in pooled:
            raise SystemExit(f"--pool: no float setting in {', '.join(args.pool)} (the ratios need it)")
        print(f"{len(args.pool)} runs pooled: dataset {meta.get('dataset')}, MLP hidden {meta.get('hidden')}, "
              f"{meta.get('threads')} torch thread(s)")
        print_table(pooled, baseline)
        return 0
    chosen = args.methods or [parse_setting(m) for m in DEFAULT_METHODS]
    settings = [(setting_name(m, o), m, o) for m, o in chosen]
    if not any(name == "float" for name, _, _ in settings):
        settings.insert(0, ("float", "float", {}))
    by_name = {name: (m, o) for name, m, o in settings}
    profiles = [setting_name(*parse_setting(p)) for p in args.profile]
    for p in profiles:
        if p not in by_name:
            parser.error(f"--profile {p!r} is not among the timed settings ({', '.join(by_name)})")

    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bnnflow-train-speed-") as tmp:
        return run(args, settings, by_name, profiles, baseline, Path(tmp))


def run(args: argparse.Namespace, settings: list, by_name: dict, profiles: list[str], baseline: dict | None,
        tmp: Path) -> int:
    """Time every setting, print the table, profile, write --json."""
    import torch

    from bnnflow.datasets import load_dataset

    dataset = args.dataset
    if args.synthetic:
        (tmp / "data").mkdir()
        write_synthetic_idx(tmp / "data", args.synthetic, args.seed)
        dataset = f"idx:{tmp / 'data'}"
    n_train = len(load_dataset(dataset).x_train)
    label = f"synthetic 28x28 ({args.synthetic} train images)" if args.synthetic else args.dataset
    load = os.getloadavg()
    print(f"dataset {label}, MLP hidden {args.hidden}, seed {args.seed}, {args.epochs} epochs per run (first not "
          f"timed) x {args.rounds} rounds; torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"{platform.machine()}, load average {load[0]:.2f} on {os.cpu_count()} CPUs")

    pooled: dict[str, dict[str, Any]] = {name: {"epochs": []} for name, _, _ in settings}
    started = time.perf_counter()
    for rnd in range(args.rounds):
        for name, method, options in settings:
            metrics = run_train(method, options, args, dataset, tmp / f"{rnd}-{method}", args.epochs)
            pooled[name]["epochs"] += metrics["epochs"][1:]
            pooled[name]["steps_per_epoch"] = steps_per_epoch(n_train, metrics["batch_size"])
    elapsed = time.perf_counter() - started
    table = print_table(pooled, baseline)
    print(f"({elapsed:.0f} s; load average now {os.getloadavg()[0]:.2f})")

    result: dict[str, Any] = {
        "meta": {"dataset": label, "hidden": args.hidden, "batch_size": args.batch_size, "threads": args.threads,
                 "seed": args.seed, "torch": torch.__version__, "load_average": [load[0], os.getloadavg()[0]]},
        "settings": {name: dict(pooled[name], **table[name]) for name in pooled},
        "profiles": {},
    }
    for name in profiles:
        method, options = by_name[name]
        metrics, events = profile_run(method, options, args, dataset, tmp / f"profile-{method}")
        summary = summarize_profile(events, args.profile_epochs)
        epoch_ms = 1000 * statistics.mean(e["seconds"] for e in metrics["epochs"])
        print_profile(name, summary, epoch_ms, 1000 * table[name]["wall_best"],
                      pooled[name]["steps_per_epoch"], args.top)
        result["profiles"][name] = dict(summary, epoch_ms=epoch_ms)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
