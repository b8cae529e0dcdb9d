#!/usr/bin/python3
"""Pictures of a training run, drawn with matplotlib.

    plot_run.py METRICS.jsonl BLEU.jsonl OUTDIR

METRICS.jsonl is what `moe-train --metrics` writes (one row per step with
the loss, the auxiliary loss and the tokens each expert of each MoE layer
received); BLEU.jsonl has one `moe-eval --json` document per line (the
scores of one checkpoint). Writes:

  OUTDIR/loss.png         training loss per step and its moving average
  OUTDIR/bleu.png         BLEU per translation direction over training, the
                          copy-the-source baseline of each dashed
  OUTDIR/expert-load.png  per MoE layer, the share of the routed tokens each
                          expert received over training (a heatmap)
"""
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_jsonl(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                sys.exit(f"plot_run: {path}:{number}: not JSON ({error})")
    return rows


def moving_average(values, window):
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_loss(metrics, path):
    steps = [r["step"] for r in metrics if r.get("loss") is not None]
    loss = [r["loss"] for r in metrics if r.get("loss") is not None]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, loss, color="#9ecae1", linewidth=0.6, label="loss per step")
    window = max(1, len(loss) // 50)
    ax.plot(steps, moving_average(loss, window), color="#08519c",
            label=f"moving average ({window} steps)")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (label-smoothed)")
    ax.set_title("Training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_bleu(evaluations, path):
    series = {}
    for evaluation in evaluations:
        for row in evaluation["rows"]:
            name = f'{row["source"]}-{row["target"]}'
            series.setdefault(name, []).append(
                (evaluation["step"], row["bleu"], row["copy_bleu"]))
    fig, ax = plt.subplots(figsize=(7, 4))
    colors = plt.get_cmap("tab10")
    for i, (name, points) in enumerate(sorted(series.items())):
        points.sort()
        color = colors(i % 10)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o",
                color=color, label=name)
        ax.axhline(points[-1][2], color=color, linestyle="--", linewidth=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("BLEU (sacreBLEU default)")
    ax.set_title("Held-out BLEU (dashed: copy the source)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_expert_load(metrics, path):
    rows = [r for r in metrics if r.get("expert_counts")]
    if not rows:
        return False
    layers = len(rows[0]["expert_counts"])
    bins = min(60, len(rows))
    per_bin = math.ceil(len(rows) / bins)
    fig, axes = plt.subplots(layers, 1, figsize=(7, 1.6 + 1.4 * layers),
                             squeeze=False)
    for layer in range(layers):
        experts = len(rows[0]["expert_counts"][layer])
        grid = [[0.0] * bins for _ in range(experts)]
        edges = []
        for b in range(bins):
            chunk = rows[b * per_bin:(b + 1) * per_bin]
            if not chunk:
                continue
            edges.append(chunk[0]["step"])
            totals = [sum(r["expert_counts"][layer][e] for r in chunk)
                      for e in range(experts)]
            routed = sum(totals) or 1
            for e in range(experts):
                grid[e][b] = totals[e] / routed
        ax = axes[layer][0]
        image = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0.0,
                          interpolation="nearest",
                          extent=(rows[0]["step"], rows[-1]["step"],
                                  experts - 0.5, -0.5))
        ax.set_ylabel(f"MoE layer {layer}\nexpert")
        fig.colorbar(image, ax=ax, label="share of tokens")
    axes[-1][0].set_xlabel("step")
    axes[0][0].set_title("Expert load over training (uniform = "
                         f"{1.0 / len(rows[0]['expert_counts'][0]):.3f})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: plot_run.py METRICS.jsonl BLEU.jsonl OUTDIR")
    metrics = read_jsonl(sys.argv[1])
    if not metrics:
        sys.exit(f"plot_run: {sys.argv[1]} has no rows")
    evaluations = read_jsonl(sys.argv[2]) if os.path.exists(sys.argv[2]) else []
    os.makedirs(sys.argv[3], exist_ok=True)
    written = [os.path.join(sys.argv[3], "loss.png")]
    plot_loss(metrics, written[-1])
    if evaluations:
        written.append(os.path.join(sys.argv[3], "bleu.png"))
        plot_bleu(evaluations, written[-1])
    if plot_expert_load(metrics, os.path.join(sys.argv[3], "expert-load.png")):
        written.append(os.path.join(sys.argv[3], "expert-load.png"))
    print("pictures: " + " ".join(written))


if __name__ == "__main__":
    main()
