"""Reproduction table: train every method with fixed seeds and write docs/RESULTS.md.

    python bench/results.py                      # digits, MLP 256,256 and a small conv net
    python bench/results.py --dataset idx:DIR    # MNIST-format data (or --dataset mnist)
    make results

Each row is one `bnnflow train` command (printed in the table), run in this
process with one torch thread so that the time per epoch compares methods on
equal terms. Runs are kept under --runs (default runs/results/) so any of them
can be plotted (`bnnflow plot runs/results/NAME`) or, for the BNN MLP, exported.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: (name, label, method, options) per network; options are CLI flags without the leading dashes.
SETTINGS = [
    ("float", "float", {}),
    ("bc-det", "binaryconnect", {"variant": "det"}),
    ("bc-stoch", "binaryconnect", {"variant": "stoch"}),
    ("bnn", "bnn", {}),
    ("bnn-shift", "bnn", {"bn": "shift", "optim": "shift-adamax"}),
    ("xnor", "xnor", {"variant": "xnor"}),
    ("bwn", "xnor", {"variant": "bwn"}),
    ("dorefa-w1a1", "dorefa", {"wbits": 1, "abits": 1}),
    ("dorefa-w1a2", "dorefa", {"wbits": 1, "abits": 2}),
    ("dorefa-w2a2", "dorefa", {"wbits": 2, "abits": 2}),
    ("dorefa-w1a2g6", "dorefa", {"wbits": 1, "abits": 2, "gbits": 6}),
    ("dorefa-w8a8g8", "dorefa", {"wbits": 8, "abits": 8, "gbits": 8}),
    ("wage-2888", "wage", {}),
]
CONV_SETTINGS = ["float", "bc-det", "bc-stoch", "bnn", "xnor", "bwn", "dorefa-w1a1", "dorefa-w1a2",
                 "dorefa-w2a2", "wage-2888"]

#: Published numbers for context (REFERENCE.md section 1): (method, setting, dataset / net, metric).
PAPERS = [
    ("BinaryConnect", "det", "MNIST (MLP)", "1.29% test error"),
    ("BinaryConnect", "stoch", "MNIST (MLP)", "1.18% test error"),
    ("BinaryConnect", "det / stoch", "CIFAR-10", "9.90% / 8.27% test error"),
    ("BNN", "W1A1", "MNIST (3x4096 MLP, Theano / Torch7)", "0.96% / 1.40% test error"),
    ("BNN", "W1A1", "CIFAR-10 (Theano / Torch7)", "11.40% / 10.15% test error"),
    ("XNOR-Net", "BWN", "ImageNet AlexNet", "56.8% top-1"),
    ("XNOR-Net", "XNOR", "ImageNet AlexNet", "44.2% top-1 (69.2% top-5)"),
    ("DoReFa-Net", "W32A32G32 / W1A32G32", "ImageNet AlexNet", "40.3% / 44.3% top-1 error"),
    ("DoReFa-Net", "W1A1G32 / W1A2G32", "ImageNet AlexNet", "51.5% / 46.6% top-1 error"),
    ("DoReFa-Net", "W1A2G6 / W8A8G8", "ImageNet AlexNet", "46.8% / 42.0% top-1 error"),
    ("WAGE", "2-8-8-8", "MNIST", "0.40% test error"),
    ("WAGE", "2-8-8-8", "CIFAR-10 (VGG7-like)", "6.78% test error"),
]


def train_command(name: str, method: str, options: dict, net: dict, args, runs: Path) -> list[str]:
    cmd = ["train", "--dataset", args.dataset, "--method", method]
    if net["arch"]:
        cmd += ["--arch", net["arch"]]
    else:
        cmd += ["--hidden", args.hidden]
    cmd += ["--epochs", str(net["epochs"]), "--seed", str(args.seed)]
    for key, value in options.items():
        cmd += ["--" + key.replace("_", "-"), str(value)]
    cmd += ["--out", str(runs / f"{net['name']}-{name}")]
    return cmd


def deployed_accuracy(run: Path) -> float | None:
    """Test accuracy of the run's exported integer network (the golden model, bit-exact with every level).

    ``bnnflow export`` (without RTL/HLS files) writes the test split's golden
    scores; `bnnflow verify RUN --against golden,rtl,hls` would show the same
    number at every level.
    """
    import numpy as np
    from bnnflow.export import export_run
    from bnnflow.golden import argmax_lowest
    from bnnflow.writer import read_vectors

    from bnnflow.model.deploy import DeployError

    try:
        artifact = export_run(run, generate=())
    except DeployError as exc:      # e.g. XNOR-Net conv nets (docs/DEPLOY.md, "Limits"): the row stays empty
        print(f"         not deployed: {exc}", flush=True)
        return None
    _, labels, scores = read_vectors(artifact)
    return float(np.mean(argmax_lowest(scores) == labels))


def pct(x: float) -> str:
    return f"{100 * x:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="digits", help="digits, mnist or idx:DIR (default digits)")
    parser.add_argument("--hidden", default="256,256", help="MLP hidden sizes (default 256,256)")
    parser.add_argument("--arch", default="32C3-32C3-MP2-64C3-FC128",
                        help="conv net spec (default 32C3-32C3-MP2-64C3-FC128, fits digits' 8x8); '' to skip")
    parser.add_argument("--epochs", type=int, default=60, help="MLP epochs (default 60)")
    parser.add_argument("--conv-epochs", type=int, default=30, help="conv net epochs (default 30)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", help="comma-separated setting or method names to run, e.g. bnn,dorefa-w1a2 "
                                       "(default all; float always runs as the baseline)")
    parser.add_argument("--runs", default="runs/results", help="where the run folders go (default runs/results)")
    parser.add_argument("--out", default="docs/RESULTS.md", help="markdown file to write (default docs/RESULTS.md)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse run folders that already exist (same command) instead of retraining")
    args = parser.parse_args(argv)

    import torch
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT))
    from bnnflow.cli import main as bnnflow_main

    runs = Path(args.runs)
    nets = [{"name": "mlp", "arch": "", "epochs": args.epochs, "label": f"MLP {args.hidden}"}]
    if args.arch:
        nets.append({"name": "conv", "arch": args.arch, "epochs": args.conv_epochs, "label": f"conv {args.arch}"})
    only = set(args.only.split(",")) if args.only else None
    rows = []
    started = time.time()
    for net in nets:
        for name, method, options in SETTINGS:
            if net["arch"] and name not in CONV_SETTINGS:
                continue
            if only and not ({name, method} & only) and name != "float":
                continue
            cmd = train_command(name, method, options, net, args, runs)
            out = Path(cmd[cmd.index("--out") + 1])
            command = "bnnflow " + " ".join(shlex.quote(c) for c in cmd)
            stamp = out / "command.txt"
            if args.reuse and stamp.is_file() and stamp.read_text().strip() == command:
                print(f"[{time.time() - started:6.0f} s] reusing {out}", flush=True)
            else:
                print(f"[{time.time() - started:6.0f} s] {command}", flush=True)
                if bnnflow_main(cmd + ["--quiet"]) != 0:
                    raise SystemExit(f"training failed: {command}")
                stamp.write_text(command + "\n")
            metrics = json.loads((out / "metrics.json").read_text())
            config = json.loads((out / "config.json").read_text())
            deployed = deployed_accuracy(out) if method != "float" else None
            rows.append({"net": net, "name": name, "method": method, "config": config, "metrics": metrics,
                         "command": command, "deployed": deployed})
            print(f"         test {pct(metrics['test_acc'])}%  {metrics['seconds_per_epoch']:.3f} s/epoch"
                  + (f"  deployed {pct(deployed)}%" if deployed is not None else ""), flush=True)
    write_markdown(Path(args.out), rows, args, argv, time.time() - started)
    print(f"wrote {args.out}")
    return 0


def write_markdown(path: Path, rows: list[dict], args, argv, seconds: float) -> None:
    from bnnflow.model.methods import bits_label

    lines = [
        "# Training results: the five methods on " + args.dataset,
        "",
        "<!-- Generated by bench/results.py; do not edit by hand. Rerun `make results`. -->",
        "",
        f"Generated {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')} by "
        f"`python bench/results.py{(' ' + ' '.join(shlex.quote(a) for a in argv)) if argv else ''}` "
        f"in {seconds / 60:.1f} min (torch {__import__('torch').__version__}, {args.threads} thread, "
        f"{platform.processor() or platform.machine()}). Seed {args.seed}. "
        + ("The digits split is the stratified 80/20 split with split seed 0 (1437 train / 360 test "
           "images), so one test image is 0.28 points." if args.dataset == "digits" else ""),
        "",
        "Accuracy is on the test split after the last epoch. **Deployed** is the exported integer network's "
        "accuracy on the same split (`bnnflow export`, then the golden model, which every level -- RTL, HLS, "
        "the board driver -- matches bit for bit; BinaryConnect and XNOR-Net activations quantized to 8 bits "
        "at export, docs/DEPLOY.md); empty for float and for the conv nets export refuses (XNOR-Net's, "
        "DEPLOY.md, Limits). **Gap** is to the float baseline of the same "
        "network; **time** is the mean wall time of one training epoch relative to float (shared machine: "
        "expect +-20% noise). **Target**: float MLP >= 97%, BNN MLP >= 96%, every other method within 3 "
        "points of float.",
        "",
    ]
    for net_name in dict.fromkeys(r["net"]["name"] for r in rows):
        net_rows = [r for r in rows if r["net"]["name"] == net_name]
        net = net_rows[0]["net"]
        base = next((r for r in net_rows if r["name"] == "float"), None)
        lines += [f"## {net['label']}, {net['epochs']} epochs", "",
                  "| method | setting | test acc % | deployed acc % | gap to float | time / epoch | vs float | target "
                  "| extra |",
                  "|---|---|---:|---:|---:|---:|---:|:---:|---|"]
        for r in net_rows:
            m, cfg = r["metrics"], r["config"]
            acc = m["test_acc"]
            gap = "" if base is None or r is base else f"{100 * (acc - base['metrics']['test_acc']):+.2f}"
            ratio = "" if base is None else f"{m['seconds_per_epoch'] / base['metrics']['seconds_per_epoch']:.2f}x"
            if r["name"] == "float":
                ok = acc >= 0.97 if net_name == "mlp" else None
            else:
                ok = base is not None and acc >= base["metrics"]["test_acc"] - 0.03
                if r["method"] == "bnn" and net_name == "mlp":
                    ok = ok and acc >= 0.96
            extra = []
            if "test_acc_binary" in m:
                extra.append(f"binary weights {pct(m['test_acc_binary'])}%, real weights {pct(m['test_acc_real'])}% "
                             f"(reported: {m.get('eval_weights')})")
            if cfg.get("optim") not in ("adam",):
                extra.append(cfg["optim"])
            deployed = "" if r["deployed"] is None else pct(r["deployed"])
            lines.append(f"| {r['method']} | {bits_label(cfg)} | {pct(acc)} | {deployed} | {gap} | "
                         f"{m['seconds_per_epoch'] * 1000:.0f} ms | {ratio} | "
                         f"{'-' if ok is None else ('yes' if ok else '**NO**')} | {'; '.join(extra)} |")
        lines.append("")
    lines += ["## Commands", "", "Each row above is one of these (run folders under "
              f"`{args.runs}/`; `bnnflow plot RUN` draws its curves):", "", "```"]
    lines += [r["command"] for r in rows]
    lines += ["```", "",
              "## Published numbers, for context", "",
              "From the papers (REFERENCE.md section 1); different datasets and much larger networks, so "
              "compare the ordering of methods, not the values.", "",
              "| method | setting | dataset / network | published |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in PAPERS]
    lines += ["", "## Notes", "",
              "- BinaryConnect is evaluated both ways: the deterministic net with binary weights, the stochastic "
              "net with its real weights (the paper's choice); both numbers are in the last column. Real-weight "
              "evaluation reuses the BatchNorm statistics collected with binary weights, as the paper does, so "
              "for the deterministic net (whose weights never needed to approach +-1) it can be much worse.",
              "- DoReFa and XNOR-Net keep the first and last layers real (the papers' choice); WAGE and BNN "
              "quantize every layer. BNN's first layer takes the integer pixels (bit-plane first layer).",
              "- WAGE trains with its own quantized SGD (lr 8, then 1, then 1/8) and SSE loss, no BatchNorm.",
              ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
