"""Random ViT-B/16-shaped checkpoint (+ expected outputs) for load/speed/parity tests at full size.

  /usr/bin/python3 scripts/parity/make_vitb16_random.py \
      [--out /tmp/vitpeft-vitb16/vit_b16_random.safetensors] [--layout timm|hf|hf-cls] \
      [--expected /tmp/vitpeft-vitb16/expected.safetensors]

Architecture: 224, patch 16, width 768, depth 12, heads 12, MLP 3072, 1000-class head,
LayerNorm eps 1e-6 (timm). Weights are drawn with torch.manual_seed(0), so every layout
holds the same numbers. --layout timm: timm names with head (~346 MB); hf: plain ViTModel
names (no head, no pooler); hf-cls: ViTForImageClassification ('vit.' prefix, classifier.*).
Not committed: the files go to /tmp by default. Needs Debian's python3-torch.
"""
import argparse
import os
import sys
import time

# OpenBLAS splits GEMMs differently per thread count, which changes float32 results
# in the last bits; pin it so the written outputs are byte-for-byte reproducible.
os.environ["OPENBLAS_NUM_THREADS"] = "1"
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vit_reference import (IMAGENET_MEAN, IMAGENET_STD, VisionTransformer,  # noqa: E402
                           normalize_nhwc_u8, timm_to_hf, write_safetensors)

CFG = dict(img_size=224, patch=16, width=768, depth=12, heads=12, mlp_hidden=3072, num_classes=1000)
DEFAULT_DIR = "/tmp/vitpeft-vitb16"


def random_state_dict(cfg):
    """timm-like scales: weights and biases N(0, 0.02), LayerNorm 1+N(0,0.05) / N(0,0.05)."""
    ref = VisionTransformer(**cfg, eps=1e-6)
    sd = {}
    for name, p in ref.state_dict().items():
        if ".norm" in name or name.startswith("norm."):
            v = 1.0 + torch.randn(p.shape) * 0.05 if name.endswith("weight") else torch.randn(p.shape) * 0.05
        else:  # cls_token, pos_embed, patch_embed, Linear weights and biases, head
            v = torch.randn(p.shape) * 0.02
        sd[name] = v.float().contiguous()
    del ref
    return sd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None, help="checkpoint path (default in %s)" % DEFAULT_DIR)
    ap.add_argument("--layout", choices=("timm", "hf", "hf-cls"), default="timm")
    ap.add_argument("--expected", default=os.path.join(DEFAULT_DIR, "expected.safetensors"))
    args = ap.parse_args()
    out = args.out or os.path.join(DEFAULT_DIR, {"timm": "vit_b16_random.safetensors",
                                                 "hf": "vit_b16_random_hf.safetensors",
                                                 "hf-cls": "vit_b16_random_hf_cls.safetensors"}[args.layout])
    for p in (out, args.expected):
        os.makedirs(os.path.dirname(os.path.abspath(p)), exist_ok=True)

    t0 = time.time()
    torch.manual_seed(0)
    sd = random_state_dict(CFG)
    images = torch.randint(0, 256, (2, 224, 224, 3), dtype=torch.uint8)
    t1 = time.time()

    if args.layout == "timm":
        tensors = sd
    else:
        tensors = timm_to_hf(sd, classification=(args.layout == "hf-cls"))
    write_safetensors(out, tensors)
    del tensors
    t2 = time.time()

    x = normalize_nhwc_u8(images)
    res = {}
    for tag, eps in (("timm", 1e-6), ("hf", 1e-12)):
        m = VisionTransformer(**CFG, eps=eps)
        m.load_state_dict(sd, strict=True)
        m.eval()
        with torch.no_grad():
            res[tag] = m(x)
        del m
    t3 = time.time()

    expected = {
        "images": images,
        "mean": torch.tensor(IMAGENET_MEAN, dtype=torch.float32),
        "std": torch.tensor(IMAGENET_STD, dtype=torch.float32),
        "timm.features": res["timm"][0], "timm.logits": res["timm"][1],
        "hf.features": res["hf"][0], "hf.logits": res["hf"][1],
    }
    meta = {
        "model": "random ViT-B/16 (224, patch 16, width 768, depth 12, heads 12, mlp 3072, 1000 classes), "
                 "torch.manual_seed(0); made by scripts/parity/make_vitb16_random.py",
        "input": "x = (u8/255 - mean)/std in float32, NHWC -> NCHW",
        "images": "U8 [2,224,224,3] NHWC random pixels",
        "timm.features": "[2,768] CLS token after final LayerNorm, eps 1e-6",
        "timm.logits": "[2,1000] head(timm.features)",
        "hf.features": "[2,768] same weights, LayerNorm eps 1e-12",
        "hf.logits": "[2,1000] classifier(hf.features)",
    }
    write_safetensors(args.expected, expected, meta)
    t4 = time.time()

    f, l = res["timm"]
    print(f"{out}: {os.path.getsize(out) / 1e6:.1f} MB ({args.layout} layout)")
    print(f"{args.expected}: {os.path.getsize(args.expected)} bytes")
    print("features std %.3g, logits std %.3g, max|timm-hf| features %.3g" %
          (f.std(), l.std(), (f - res["hf"][0]).abs().max()))
    print(f"init {t1 - t0:.1f}s, write {t2 - t1:.1f}s, forward x2 {t3 - t2:.1f}s, "
          f"expected {t4 - t3:.1f}s, total {t4 - t0:.1f}s")


if __name__ == "__main__":
    main()
