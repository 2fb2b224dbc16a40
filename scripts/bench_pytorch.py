"""The cases of `npm run bench` in PyTorch, for a same-run comparison (bench --pytorch runs this).

  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=2 /usr/bin/python3 scripts/bench_pytorch.py --json \
      [--only train.full,eval] [--runs 5] [--warmup 2] [--threads 1,2]

Needs Debian's python3-torch with libopenblas0-pthread (without it PyTorch runs ~10x slower and
the comparison flatters vitpeft). Not needed by the tests.

Same shapes and work as bench/cases.ts: a training step is forward, cross-entropy, backward and an
SGD-with-momentum update of exactly the method's trainable parameters, the loss read back; an eval
case is a forward pass under no_grad with the output read back. Each case is timed with every
intra-op thread count in --threads and the best median is reported with the count that gave it
(PyTorch "at its best thread setting on this machine"). The model is scripts/parity/vit_reference.py,
the hand-written timm-equivalent ViT the parity fixtures came from.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "parity"))
from vit_reference import Block, VisionTransformer  # noqa: E402

REFERENCE = dict(img_size=32, patch=4, width=192, depth=12, heads=3, mlp_hidden=768, classes=10, batch=32)
DEFAULT = dict(img_size=28, patch=7, width=64, depth=6, heads=2, mlp_hidden=256, classes=5, batch=32)


class LoRAQV(nn.Module):
    """LoRA on the query and value rows of a fused qkv Linear (peft's recipe: B zero, alpha = r)."""

    def __init__(self, qkv: nn.Linear, rank: int):
        super().__init__()
        self.qkv = qkv
        width = qkv.in_features
        self.width = width
        self.a_q = nn.Parameter(torch.randn(rank, width) / math.sqrt(width))
        self.b_q = nn.Parameter(torch.zeros(width, rank))
        self.a_v = nn.Parameter(torch.randn(rank, width) / math.sqrt(width))
        self.b_v = nn.Parameter(torch.zeros(width, rank))

    def forward(self, x):
        out = self.qkv(x)
        q = (x @ self.a_q.t()) @ self.b_q.t()
        v = (x @ self.a_v.t()) @ self.b_v.t()
        zero = torch.zeros_like(q)
        return out + torch.cat([q, zero, v], dim=-1)


def build(shape, method):
    """The model with the method applied; returns (model, trainable parameters)."""
    model = VisionTransformer(img_size=shape["img_size"], patch=shape["patch"], width=shape["width"], depth=shape["depth"],
                              heads=shape["heads"], mlp_hidden=shape["mlp_hidden"], num_classes=shape["classes"])
    for p in model.parameters():
        p.requires_grad_(method == "full")
    head = list(model.head.parameters())
    for p in head:
        p.requires_grad_(True)
    if method == "full":
        return model, list(model.parameters())
    if method == "linear":
        return model, head
    if method == "lora-r8":
        adapters = []
        for block in model.blocks:
            block.attn.qkv = LoRAQV(block.attn.qkv, 8)
            adapters += [block.attn.qkv.a_q, block.attn.qkv.b_q, block.attn.qkv.a_v, block.attn.qkv.b_v]
        return model, adapters + head
    if method == "block-p2":
        # LLaMA Pro: after every depth/2-th block a copy with attn.proj and mlp.fc2 zeroed; only the copies train.
        depth = len(model.blocks)
        split = depth // 2
        blocks, added = [], []
        for i, block in enumerate(model.blocks):
            blocks.append(block)
            if (i + 1) % split == 0:
                copy = Block(shape["width"], shape["heads"], shape["mlp_hidden"], 1e-6)
                copy.load_state_dict(block.state_dict())
                for linear in (copy.attn.proj, copy.mlp.fc2):
                    nn.init.zeros_(linear.weight)
                    nn.init.zeros_(linear.bias)
                for p in copy.parameters():
                    p.requires_grad_(True)
                blocks.append(copy)
                added += list(copy.parameters())
        model.blocks = nn.ModuleList(blocks)
        return model, added + head
    raise ValueError(method)


def images(shape, batch):
    generator = torch.Generator().manual_seed(7)
    return torch.randn(batch, 3, shape["img_size"], shape["img_size"], generator=generator)


def train_case(shape, method):
    def prepare():
        model, trainable = build(shape, method)
        optimizer = torch.optim.SGD(trainable, lr=0.005, momentum=0.9)
        x = images(shape, shape["batch"])
        y = torch.tensor([(i * 7) % shape["classes"] for i in range(shape["batch"])])

        def step():
            optimizer.zero_grad(set_to_none=True)
            _, logits = model(x)
            loss = nn.functional.cross_entropy(logits, y)
            loss.backward()
            optimizer.step()
            loss.item()
        return step
    return shape["batch"], prepare


def eval_case(shape, batch, logits):
    def prepare():
        model, _ = build(shape, "full")
        model.eval()
        x = images(shape, batch)

        def forward():
            with torch.no_grad():
                features, out = model(x)
                (out if logits else features).sum().item()
        return forward
    return batch, prepare


def dense_case(shape):
    """One block's dense products of a training step (bench/cases.ts denseCase): forward with bias, dX, dW, db for qkv, proj, fc1, fc2."""
    def prepare():
        rows = shape["batch"] * (1 + (shape["img_size"] // shape["patch"]) ** 2)
        width, hidden = shape["width"], shape["mlp_hidden"]
        generator = torch.Generator().manual_seed(7)
        layers = [(torch.randn(rows, i, generator=generator), torch.randn(rows, o, generator=generator), torch.randn(i, o, generator=generator) * 0.02, torch.zeros(o))
                  for i, o in ((width, 3 * width), (width, width), (width, hidden), (hidden, width))]

        def products():
            outputs = []
            for x, dy, weight, bias in layers:
                outputs += [torch.addmm(bias, x, weight), dy @ weight.t(), x.t() @ dy, dy.sum(0)]
            outputs[-1][0].item()
        return products
    return shape["batch"], prepare


CASES = {
    "train.full": train_case(REFERENCE, "full"),
    "train.lora-r8": train_case(REFERENCE, "lora-r8"),
    "train.block-p2": train_case(REFERENCE, "block-p2"),
    "train.linear": train_case(REFERENCE, "linear"),
    "train.default-full": train_case(DEFAULT, "full"),
    "train.default-lora-r8": train_case(DEFAULT, "lora-r8"),
    "eval.reference-b128": eval_case(REFERENCE, 128, logits=True),
    "eval.default-b256": eval_case(DEFAULT, 256, logits=False),
    "kernel.dense-default": dense_case(DEFAULT),
    "kernel.dense-reference": dense_case(REFERENCE),
}


def time_runs(run, warmup, runs):
    for _ in range(warmup):
        run()
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return seconds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    ap.add_argument("--only", default=None, help="comma-separated case ids or groups")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", default="1,2", help="intra-op thread counts to try (best median reported)")
    args = ap.parse_args()
    wanted = [w for w in (args.only or "").split(",") if w]
    selected = [c for c in CASES if not wanted or c in wanted or c.split(".")[0] in wanted]
    thread_counts = [int(t) for t in args.threads.split(",")]
    torch.manual_seed(0)
    out = {"torch": torch.__version__, "blas": torch.__config__.show().count("openblas") > 0 and "openblas" or "other",
           "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"), "cases": {}}
    for case in selected:
        batch, prepare = CASES[case]
        best = None
        for threads in thread_counts:
            torch.set_num_threads(threads)
            run = prepare()
            seconds = time_runs(run, args.warmup, args.runs)
            median = statistics.median(seconds)
            if best is None or median < best["median_seconds"]:
                best = {"batch": batch, "median_seconds": median, "min_seconds": min(seconds), "threads": threads,
                        "images_per_second": batch / median}
        out["cases"][case] = best
        if not args.json:
            print(f"{case:28s} {best['images_per_second']:10.2f} img/s  ({best['median_seconds'] * 1000:.0f} ms median, {best['threads']} intra-op thread(s))")
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
