"""Small, readable PyTorch reference for the vitpeft parity fixtures.

Needs only Debian's python3-torch (and numpy, which it pulls in). No timm,
transformers or safetensors Python package is used: everything here is written
out by hand so it can be read against the TypeScript implementation.

Contents
  * VisionTransformer  - same forward as timm's VisionTransformer (pre-norm,
                         fused qkv, exact-erf GELU, CLS token, final norm);
                         its state_dict() keys are exactly timm's.
  * timm_to_hf / hf_to_timm - rename a timm state dict to Hugging Face ViTModel /
                         ViTForImageClassification names and back.
  * resample_abs_pos_embed - pos-embed grid resampling as timm does it.
  * write_safetensors / read_safetensors - minimal safetensors codec
                         (dtypes F32, I64, U8).
"""
import json
import math
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------- model

class PatchEmbed(nn.Module):
    def __init__(self, patch, width):
        super().__init__()
        self.proj = nn.Conv2d(3, width, kernel_size=patch, stride=patch)  # bias=True

    def forward(self, x):                       # x: [B,3,H,W]
        x = self.proj(x)                        # [B,W,H/p,W/p]
        return x.flatten(2).transpose(1, 2)     # [B,N,W], row-major over the grid


class Attention(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        assert width % heads == 0
        self.heads = heads
        self.head_dim = width // heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(width, 3 * width)  # rows: q (W), then k (W), then v (W)
        self.proj = nn.Linear(width, width)

    def forward(self, x):                       # x: [B,T,W]
        B, T, W = x.shape
        qkv = self.qkv(x).reshape(B, T, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]        # each [B,H,T,hd]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, T, W)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, width, hidden):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU()                    # exact erf form
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, width, heads, mlp_hidden, eps):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=eps)
        self.attn = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width, eps=eps)
        self.mlp = Mlp(width, mlp_hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        x = x + self.mlp(self.norm2(x))
        return x


class VisionTransformer(nn.Module):
    """timm VisionTransformer (class-token pooling, no pre-norm, no layer scale)."""

    def __init__(self, img_size=224, patch=16, width=768, depth=12, heads=12,
                 mlp_hidden=3072, num_classes=1000, eps=1e-6):
        super().__init__()
        assert img_size % patch == 0
        self.grid = img_size // patch
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid * self.grid, width))
        self.patch_embed = PatchEmbed(patch, width)
        self.blocks = nn.ModuleList([Block(width, heads, mlp_hidden, eps) for _ in range(depth)])
        self.norm = nn.LayerNorm(width, eps=eps)
        self.head = nn.Linear(width, num_classes) if num_classes else None

    def forward_features(self, x):              # x: [B,3,H,W] normalised -> [B,W] (CLS after norm)
        x = self.patch_embed(x)
        assert x.shape[1] + 1 == self.pos_embed.shape[1], "pos_embed does not match the image size"
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        return x[:, 0]

    def forward(self, x):
        """Returns (features, logits); logits is None without a head."""
        f = self.forward_features(x)
        return f, (self.head(f) if self.head is not None else None)


def normalize_nhwc_u8(images_u8, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """uint8 [B,H,W,3] -> float32 [B,3,H,W], x = (u8/255 - mean) / std."""
    x = images_u8.to(torch.float32) / 255.0
    x = (x - torch.tensor(mean, dtype=torch.float32)) / torch.tensor(std, dtype=torch.float32)
    return x.permute(0, 3, 1, 2).contiguous()


# --------------------------------------------------------------------------- pos-embed resampling

def resample_abs_pos_embed(posemb, new_size, num_prefix_tokens=1, interpolation="bicubic",
                           antialias=False):
    """As timm.layers.resample_abs_pos_embed (square grids); antialias defaults to False here.

    NB: timm's own default is antialias=True. For *up*sampling that still matters
    for bicubic: PyTorch's antialiased bicubic uses the PIL cubic kernel (a=-0.5)
    instead of the a=-0.75 kernel of plain bicubic. Bilinear is unaffected.

    posemb: [1, prefix + g*g, W] -> [1, prefix + new_h*new_w, W].
    Unlike timm there is no early return when the size is unchanged, so the
    identity at equal size is a property of F.interpolate, not a short cut.
    """
    if isinstance(new_size, int):
        new_size = (new_size, new_size)
    W = posemb.shape[-1]
    prefix, grid = posemb[:, :num_prefix_tokens], posemb[:, num_prefix_tokens:]
    g = int(math.sqrt(grid.shape[1]))
    assert g * g == grid.shape[1]
    orig_dtype = grid.dtype
    grid = grid.float().reshape(1, g, g, W).permute(0, 3, 1, 2)            # [1,W,g,g]
    grid = F.interpolate(grid, size=new_size, mode=interpolation,
                         align_corners=False, antialias=antialias)
    grid = grid.permute(0, 2, 3, 1).reshape(1, -1, W).to(orig_dtype)       # [1,h*w,W]
    return torch.cat([prefix, grid], dim=1)


# --------------------------------------------------------------------------- name translation

def timm_to_hf(sd, classification=True):
    """timm state dict -> Hugging Face names.

    classification=True : ViTForImageClassification ('vit.' prefix, classifier.*)
    classification=False: ViTModel (no prefix; any head is dropped)
    """
    out = {}
    pre = "vit." if classification else ""
    depth = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    W = sd["cls_token"].shape[-1]
    out[pre + "embeddings.cls_token"] = sd["cls_token"]
    out[pre + "embeddings.position_embeddings"] = sd["pos_embed"]
    for s in ("weight", "bias"):
        out[pre + f"embeddings.patch_embeddings.projection.{s}"] = sd[f"patch_embed.proj.{s}"]
    for i in range(depth):
        b, L = f"blocks.{i}.", f"{pre}encoder.layer.{i}."
        for s in ("weight", "bias"):
            out[L + f"layernorm_before.{s}"] = sd[b + f"norm1.{s}"]
            q, k, v = sd[b + f"attn.qkv.{s}"].split(W, dim=0)
            out[L + f"attention.attention.query.{s}"] = q
            out[L + f"attention.attention.key.{s}"] = k
            out[L + f"attention.attention.value.{s}"] = v
            out[L + f"attention.output.dense.{s}"] = sd[b + f"attn.proj.{s}"]
            out[L + f"layernorm_after.{s}"] = sd[b + f"norm2.{s}"]
            out[L + f"intermediate.dense.{s}"] = sd[b + f"mlp.fc1.{s}"]
            out[L + f"output.dense.{s}"] = sd[b + f"mlp.fc2.{s}"]
    for s in ("weight", "bias"):
        out[pre + f"layernorm.{s}"] = sd[f"norm.{s}"]
    for s in ("weight", "bias"):
        if classification and f"head.{s}" in sd:
            out[f"classifier.{s}"] = sd[f"head.{s}"]
    return {k: v.contiguous() for k, v in out.items()}


def hf_to_timm(sd):
    """Inverse of timm_to_hf; accepts either HF layout, ignores pooler.*."""
    pre = "vit." if any(k.startswith("vit.") for k in sd) else ""
    g = lambda k: sd[pre + k]
    layers = {int(k[len(pre):].split(".")[2]) for k in sd if k.startswith(pre + "encoder.layer.")}
    out = {"cls_token": g("embeddings.cls_token"), "pos_embed": g("embeddings.position_embeddings")}
    for s in ("weight", "bias"):
        out[f"patch_embed.proj.{s}"] = g(f"embeddings.patch_embeddings.projection.{s}")
    for i in range(max(layers) + 1):
        b, L = f"blocks.{i}.", f"encoder.layer.{i}."
        for s in ("weight", "bias"):
            out[b + f"norm1.{s}"] = g(L + f"layernorm_before.{s}")
            out[b + f"attn.qkv.{s}"] = torch.cat([g(L + f"attention.attention.{n}.{s}")
                                                  for n in ("query", "key", "value")], dim=0)
            out[b + f"attn.proj.{s}"] = g(L + f"attention.output.dense.{s}")
            out[b + f"norm2.{s}"] = g(L + f"layernorm_after.{s}")
            out[b + f"mlp.fc1.{s}"] = g(L + f"intermediate.dense.{s}")
            out[b + f"mlp.fc2.{s}"] = g(L + f"output.dense.{s}")
    for s in ("weight", "bias"):
        out[f"norm.{s}"] = g(f"layernorm.{s}")
        if f"classifier.{s}" in sd:
            out[f"head.{s}"] = sd[f"classifier.{s}"]
    return out


# --------------------------------------------------------------------------- safetensors

_DTYPES = {torch.float32: ("F32", "<f4"), torch.int64: ("I64", "<i8"), torch.uint8: ("U8", "u1")}
_NP = {"F32": "<f4", "I64": "<i8", "U8": "u1"}


def write_safetensors(path, tensors, metadata=None):
    """tensors: dict name -> torch tensor (float32, int64 or uint8), written in dict order.

    Layout: u64 LE header length | JSON header padded with spaces to a multiple
    of 8 | raw little-endian tensor bytes, back to back, in header order.
    """
    header, offset = {}, 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        dt, _ = _DTYPES[t.dtype]
        n = t.numel() * t.element_size()
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [offset, offset + n]}
        offset += n
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for t in tensors.values():
            arr = t.detach().cpu().contiguous().numpy().astype(_DTYPES[t.dtype][1], copy=False)
            f.write(arr.tobytes(order="C"))


def read_safetensors(path):
    """-> (dict name -> torch tensor, metadata dict or {})."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {}) or {}
    base, out = 8 + n, {}
    for name, h in header.items():
        a, b = h["data_offsets"]
        arr = np.frombuffer(data[base + a:base + b], dtype=_NP[h["dtype"]]).reshape(h["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out, meta
