"""Writes the tiny-ViT parity fixtures to test/fixtures/parity/ (deterministic, seed 0).

  /usr/bin/python3 scripts/parity/make_parity_fixture.py [--outdir test/fixtures/parity]

Model: image 32, patch 8 (grid 4, 16 patches), width 128, depth 2, heads 2
(head_dim 64), MLP hidden 512, 10 classes. Needs Debian's python3-torch.
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
from vit_reference import (IMAGENET_MEAN, IMAGENET_STD, VisionTransformer, hf_to_timm,  # noqa: E402
                           normalize_nhwc_u8, read_safetensors, resample_abs_pos_embed,
                           timm_to_hf, write_safetensors)

CFG = dict(img_size=32, patch=8, width=128, depth=2, heads=2, mlp_hidden=512, num_classes=10)
# float32 weights of this model are ~1.7 MB per weight file (425,098 parameters).
# --width/--heads/--mlp/--depth shrink it (e.g. --width 48 --mlp 192: ~0.27 MB per file).
EPS_TIMM, EPS_HF = 1e-6, 1e-12


def random_state_dict(cfg):
    """Non-trivial random values in timm names, float32, fixed order."""
    ref = VisionTransformer(**cfg, eps=EPS_TIMM)
    sd = {}
    for name, p in ref.state_dict().items():
        if name in ("cls_token", "pos_embed"):
            v = torch.randn(p.shape) * 0.1
        elif ".norm" in name or name.startswith("norm."):
            v = 1.0 + torch.randn(p.shape) * 0.1 if name.endswith("weight") else torch.randn(p.shape) * 0.1
        elif name.endswith("attn.qkv.weight"):
            # larger than the rest so attention is clearly non-uniform (logit std ~2):
            # a wrong scale, head split or q/k/v order then moves the outputs a lot
            v = torch.randn(p.shape) * 0.12
        else:  # other Linear / Conv weights, all biases
            v = torch.randn(p.shape) * 0.05
        sd[name] = v.float().contiguous()
    return sd


def run(sd, cfg, x, eps):
    m = VisionTransformer(**cfg, eps=eps)
    m.load_state_dict(sd, strict=True)
    m.eval()
    with torch.no_grad():
        return m(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--outdir", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                      "test", "fixtures", "parity"))
    ap.add_argument("--width", type=int, default=CFG["width"])
    ap.add_argument("--heads", type=int, default=CFG["heads"])
    ap.add_argument("--mlp", type=int, default=CFG["mlp_hidden"])
    ap.add_argument("--depth", type=int, default=CFG["depth"])
    args = ap.parse_args()
    CFG.update(width=args.width, heads=args.heads, mlp_hidden=args.mlp, depth=args.depth)
    out = os.path.normpath(args.outdir)
    os.makedirs(out, exist_ok=True)
    t0 = time.time()
    torch.manual_seed(0)
    torch.set_num_threads(1)

    sd = random_state_dict(CFG)
    W = CFG["width"]
    pooler = {"pooler.dense.weight": torch.randn(W, W) * 0.05, "pooler.dense.bias": torch.randn(W) * 0.05}
    images = torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8)
    labels = torch.randint(0, CFG["num_classes"], (4,), dtype=torch.int64)
    images48 = torch.randint(0, 256, (4, 48, 48, 3), dtype=torch.uint8)

    # ---- weights in the three layouts
    hf_cls = timm_to_hf(sd, classification=True)
    hf_model = timm_to_hf(sd, classification=False)
    hf_model.update(pooler)
    write_safetensors(os.path.join(out, "vit_timm.safetensors"), sd)
    write_safetensors(os.path.join(out, "vit_hf.safetensors"), hf_cls)
    write_safetensors(os.path.join(out, "vit_hf_model.safetensors"), hf_model)

    # ---- reference outputs (float32)
    x = normalize_nhwc_u8(images)
    timm_f, timm_l = run(sd, CFG, x, EPS_TIMM)
    hf_f, hf_l = run(sd, CFG, x, EPS_HF)

    x48 = normalize_nhwc_u8(images48)
    cfg48 = dict(CFG, img_size=48)
    f48, pe48 = {}, {}
    for key, mode, aa in (("bicubic", "bicubic", False), ("bilinear", "bilinear", False),
                          ("bicubic_antialias", "bicubic", True)):
        pe48[key] = resample_abs_pos_embed(sd["pos_embed"], 6, interpolation=mode, antialias=aa)
        f48[key], _ = run(dict(sd, pos_embed=pe48[key]), cfg48, x48, EPS_TIMM)

    expected = {
        "images": images, "labels": labels, "images48": images48,
        "mean": torch.tensor(IMAGENET_MEAN, dtype=torch.float32),
        "std": torch.tensor(IMAGENET_STD, dtype=torch.float32),
        "timm.features": timm_f, "timm.logits": timm_l,
        "hf.features": hf_f, "hf.logits": hf_l,
        "timm.features48.bicubic": f48["bicubic"], "timm.features48.bilinear": f48["bilinear"],
        "timm.features48.bicubic_antialias": f48["bicubic_antialias"],
        "pos_embed48.bicubic": pe48["bicubic"], "pos_embed48.bilinear": pe48["bilinear"],
        "pos_embed48.bicubic_antialias": pe48["bicubic_antialias"],
    }
    meta = {
        "model": "ViT image 32, patch 8, width {width}, depth {depth}, heads {heads}, mlp {mlp_hidden}, "
                 "classes 10; weights in vit_timm.safetensors (= vit_hf*.safetensors)".format(**CFG),
        "input": "x = (u8/255 - mean)/std in float32, NHWC -> NCHW",
        "images": "U8 [4,32,32,3] NHWC random pixels",
        "labels": "I64 [4] random labels in 0..9 (not the model's predictions)",
        "images48": "U8 [4,48,48,3] NHWC random pixels for the 48x48 runs",
        "mean": "ImageNet mean (0.485,0.456,0.406)",
        "std": "ImageNet std (0.229,0.224,0.225)",
        "timm.features": f"[4,{W}] CLS token after final LayerNorm, eps 1e-6, on images",
        "timm.logits": "[4,10] head(timm.features)",
        "hf.features": f"[4,{W}] same weights with LayerNorm eps 1e-12 (HF ViT config)",
        "hf.logits": "[4,10] classifier(hf.features)",
        "timm.features48.bicubic": f"[4,{W}] on images48, pos_embed grid 4->6 by "
                                   "F.interpolate bicubic, align_corners=False, antialias=False; eps 1e-6",
        "timm.features48.bilinear": f"[4,{W}] as above with bilinear",
        "timm.features48.bicubic_antialias": f"[4,{W}] as bicubic but antialias=True (timm's default: "
                                             "PIL cubic kernel a=-0.5 instead of a=-0.75)",
        "pos_embed48.bicubic": f"[1,37,{W}] the resampled pos_embed used for timm.features48.bicubic "
                               "(cls row first, unchanged)",
        "pos_embed48.bilinear": f"[1,37,{W}] the same for bilinear",
        "pos_embed48.bicubic_antialias": f"[1,37,{W}] the same for bicubic, antialias=True",
        "generator": "scripts/parity/make_parity_fixture.py (torch.manual_seed(0), torch "
                     + torch.__version__ + ")",
    }
    write_safetensors(os.path.join(out, "expected.safetensors"), expected, meta)

    # ---- self-checks --------------------------------------------------------
    # files read back bit-exactly
    for fn, ref in (("vit_timm.safetensors", sd), ("vit_hf.safetensors", hf_cls),
                    ("vit_hf_model.safetensors", hf_model), ("expected.safetensors", expected)):
        back, _ = read_safetensors(os.path.join(out, fn))
        assert list(back) == list(ref), fn
        assert all(torch.equal(back[k], ref[k]) for k in ref), fn
    # HF layouts -> inverse mapping -> same outputs
    back_cls, _ = read_safetensors(os.path.join(out, "vit_hf.safetensors"))
    f, l = run(hf_to_timm(back_cls), CFG, x, EPS_HF)
    assert torch.equal(f, hf_f) and torch.equal(l, hf_l), "HF classification round trip"
    back_model, _ = read_safetensors(os.path.join(out, "vit_hf_model.safetensors"))
    m_sd = hf_to_timm(back_model)
    assert "head.weight" not in m_sd
    f, _ = run(m_sd, dict(CFG, num_classes=0), x, EPS_HF)
    assert torch.equal(f, hf_f), "HF ViTModel round trip"
    # resampling at the same grid is the identity
    for mode in ("bicubic", "bilinear"):
        for aa in (False, True):
            same = resample_abs_pos_embed(sd["pos_embed"], 4, interpolation=mode, antialias=aa)
            d = (same - sd["pos_embed"]).abs().max().item()
            assert d < 1e-6, (mode, aa, d)
            print(f"resample 4->4 {mode} antialias={aa}: max|diff| = {d:.3g}")

    # ---- diagnostics: how far apart things are (useful for choosing tolerances)
    with torch.no_grad():
        sd64 = {k: v.double() for k, v in sd.items()}
        m64 = VisionTransformer(**CFG, eps=EPS_TIMM).double()
        m64.load_state_dict(sd64)
        f64, l64 = m64(x.double())
    print("max|f32 - f64| features %.3g logits %.3g" % ((timm_f.double() - f64).abs().max(),
                                                        (timm_l.double() - l64).abs().max()))
    print("max|timm - hf| features %.3g logits %.3g" % ((timm_f - hf_f).abs().max(),
                                                        (timm_l - hf_l).abs().max()))
    print("max|bicubic - bilinear| features48 %.3g" % (f48["bicubic"] - f48["bilinear"]).abs().max())
    print("max|bicubic - bicubic_antialias| pos_embed48 %.3g features48 %.3g" % (
        (pe48["bicubic"] - pe48["bicubic_antialias"]).abs().max(),
        (f48["bicubic"] - f48["bicubic_antialias"]).abs().max()))
    print("features std %.3g, logits std %.3g" % (timm_f.std(), timm_l.std()))
    for fn in sorted(os.listdir(out)):
        print(f"{fn}: {os.path.getsize(os.path.join(out, fn))} bytes")
    print(f"done in {time.time() - t0:.2f}s")


if __name__ == "__main__":
    main()
