"""Writes the DINO training-step parity fixture test/fixtures/parity/dino_steps.safetensors.

  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 /usr/bin/python3 scripts/parity/make_dino_fixture.py [--out PATH]

A PyTorch reference of facebookresearch/dino's training step (main_dino.py DINOLoss,
train_one_epoch, utils.clip_gradients, utils.cancel_gradients_last_layer; vision_transformer.py
DINOHead with nn.utils.weight_norm) on a tiny ViT (image 8, patch 4, width 16, depth 1, heads 2,
mlp 32; head K 16, hidden 24, bottleneck 8), batch 2, 2 global views of 8 px and 2 local views
of 4 px given as tensors (no augmentation). Two cases of 3 steps from the same kind of random
initial weights (the teacher a copy): `plain` (no batch norm, weight-normalised last layer with
its gain fixed) and `bn` (batch norm in the head, gain trained). Every step: last layer frozen
on the first step, teacher temperature warm-up, cosine learning rate, weight decay and teacher
momentum, per-parameter clipping that clips.

Where vitpeft documents a choice that differs from DINO's code, the expected values follow
vitpeft and the difference is measured and printed (and stored in __metadata__):
  * local-view position embeddings: vitpeft resamples as timm (F.interpolate(size=...,
    bicubic, antialias=True)); DINO's interpolate_pos_encoding uses scale_factor (g + 0.1) / G
    bicubic without antialias;
  * weight decay groups: vitpeft decays neither cls_token/pos_embed (timm's no_weight_decay) nor
    the last layer's gain (stored 1-d); DINO's get_params_groups decays cls_token, pos_embed and
    weight_g (shape [K, 1]), skipping only '.bias' names and 1-d tensors.
The schedules fed to the reference are vitpeft's (DinoSession.schedules); DINO's own
cosine_scheduler values for the same settings are printed next to them.

Weights are written in vitpeft's names and layouts (Linear weights [in, out], the patch
projection [p*p*3, width] in (kh, kw, channel) rows, weight_v [bottleneck, K], weight_g [K]).
Needs Debian's python3-torch; the tests never run it.
"""
import argparse
import math
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vit_reference import VisionTransformer, write_safetensors  # noqa: E402

VIT = dict(img_size=8, patch=4, width=16, depth=1, heads=2, mlp_hidden=32, num_classes=0, eps=1e-6)
HEAD = dict(out_dim=16, hidden_dim=24, bottleneck_dim=8)
BATCH, LOCAL_CROPS, LOCAL_SIZE, STEPS_RUN = 2, 2, 4, 3
# vitpeft's DinoSettings / DinoTrainSettings for the test (the TS test uses the same values).
SETTINGS = dict(student_temp=0.1, teacher_temp=(0.04, 0.07, 2), center_momentum=0.9,
                teacher_momentum=0.9, weight_decay=(0.1, 0.5), clip=1.0, freeze_last_layer=1,
                lr=0.01, warmup=0, steps=4)


# --------------------------------------------------------------------------- schedules

def vitpeft_schedules(step):
    """stages/trainer/schedule.ts learningRate ('cosine') and dino/schedules.ts, after `step` steps."""
    s = SETTINGS
    n, w = s["steps"], s["warmup"]
    if step < w:
        lr = s["lr"] * step / max(1, w)
    else:
        lr = s["lr"] * max(0.0, 0.5 * (1 + math.cos(math.pi * (step - w) / max(1, n - w))))
    cos = lambda a, b: b + 0.5 * (a - b) * (1 + math.cos(math.pi * min(step, n) / max(1, n)))
    t0, t1, tw = s["teacher_temp"]
    temp = t1 if step >= tw else t0 + (t1 - t0) * step / tw
    return dict(lr=lr, wd=cos(*s["weight_decay"]), temp=temp, momentum=cos(s["teacher_momentum"], 1.0))


def dino_cosine_scheduler(base, final, iters, warmup_iters=0, start_warmup=0.0):
    """main_dino.py / utils.py cosine_scheduler with niter_per_ep = 1."""
    warm = np.linspace(start_warmup, base, warmup_iters) if warmup_iters > 0 else np.array([])
    i = np.arange(iters - warmup_iters)
    return np.concatenate((warm, final + 0.5 * (base - final) * (1 + np.cos(np.pi * i / len(i)))))


# --------------------------------------------------------------------------- model

class Backbone(VisionTransformer):
    """vit_reference's ViT with the class token as output and position embeddings resampled for
    other input sizes: 'timm' as vitpeft (antialiased bicubic to the new grid) or 'dino'
    (vision_transformer.py interpolate_pos_encoding)."""

    def __init__(self, resample):
        super().__init__(**VIT)
        self.resample = resample

    def position_embeddings(self, grid):
        if grid == self.grid:
            return self.pos_embed
        width = self.pos_embed.shape[-1]
        cls, patches = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        patches = patches.reshape(1, self.grid, self.grid, width).permute(0, 3, 1, 2)
        if self.resample == "timm":
            patches = F.interpolate(patches, size=(grid, grid), mode="bicubic", align_corners=False, antialias=True)
        else:
            g = grid + 0.1
            patches = F.interpolate(patches, scale_factor=(g / self.grid, g / self.grid), mode="bicubic")
        return torch.cat([cls, patches.permute(0, 2, 3, 1).reshape(1, grid * grid, width)], dim=1)

    def forward(self, x):
        tokens = self.patch_embed(x)
        grid = x.shape[-1] // self.patch_embed.proj.kernel_size[0]
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), tokens], dim=1) + self.position_embeddings(grid)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)[:, 0]


class DINOHead(nn.Module):
    """vision_transformer.py DINOHead (nlayers 3)."""

    def __init__(self, in_dim, out_dim, use_bn, norm_last_layer, hidden_dim, bottleneck_dim):
        super().__init__()
        layers = [nn.Linear(in_dim, hidden_dim)]
        if use_bn:
            layers.append(nn.BatchNorm1d(hidden_dim))
        layers.append(nn.GELU())
        layers.append(nn.Linear(hidden_dim, hidden_dim))
        if use_bn:
            layers.append(nn.BatchNorm1d(hidden_dim))
        layers.append(nn.GELU())
        layers.append(nn.Linear(hidden_dim, bottleneck_dim))
        self.mlp = nn.Sequential(*layers)
        self.last_layer = nn.utils.weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        self.last_layer.weight_g.data.fill_(1)
        if norm_last_layer:
            self.last_layer.weight_g.requires_grad = False

    def forward(self, x):
        x = F.normalize(self.mlp(x), dim=-1, p=2)
        return self.last_layer(x)


class MultiCropWrapper(nn.Module):
    """utils.py MultiCropWrapper: the backbone per resolution, the head once on all outputs."""

    def __init__(self, backbone, head):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, crops):
        return self.head(torch.cat([self.backbone(c) for c in crops]))


def make_model(resample, use_bn, norm_last_layer):
    return MultiCropWrapper(Backbone(resample), DINOHead(VIT["width"], use_bn=use_bn, norm_last_layer=norm_last_layer, **HEAD))


def randomize(model, norm_last_layer):
    """Non-trivial weights (the step is what is compared, not the init)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight_g"):
                p.copy_(torch.ones_like(p) if norm_last_layer else 1 + 0.1 * torch.randn_like(p))
            elif name in ("backbone.cls_token", "backbone.pos_embed"):
                p.copy_(0.3 * torch.randn_like(p))
            elif p.ndim == 1 and name.endswith("weight"):  # LayerNorm / BatchNorm scales
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.05 * torch.randn_like(p))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn_like(p) / math.sqrt(fan_in))


# --------------------------------------------------------------------------- names and layouts

def vitpeft_name(name):
    return name[len("backbone."):] if name.startswith("backbone.") else name


def to_vitpeft(name, t):
    t = t.detach()
    if name.endswith("patch_embed.proj.weight"):  # [W, C, p, p] -> [p*p*C, W], rows (kh, kw, c)
        return t.permute(2, 3, 1, 0).reshape(-1, t.shape[0]).contiguous()
    if name.endswith("weight_g"):
        return t.reshape(-1).contiguous()
    if t.ndim == 2:  # Linear weights and weight_v: [out, in] -> [in, out]
        return t.t().contiguous()
    return t.clone().contiguous()


def exported(model, norm_last_layer):
    return {vitpeft_name(n): to_vitpeft(n, p) for n, p in model.named_parameters()
            if not (norm_last_layer and n.endswith("weight_g"))}


def decayed(name, p, groups):
    if groups == "dino":  # utils.get_params_groups
        return not (name.endswith(".bias") or p.ndim == 1)
    short = vitpeft_name(name)  # stages/trainer/dino/session.ts decayed(), on vitpeft's shapes
    return not (name.endswith(".bias") or p.ndim == 1 or name.endswith("weight_g") or short in ("cls_token", "pos_embed"))


# --------------------------------------------------------------------------- the step

def invariant_slices(student, use_bn):
    """Gradients that are exactly 0 in exact arithmetic (only rounding noise, which AdamW turns
    into steps of about lr of either sign, so the two implementations may move them apart):
    the key bias (it adds q.b_k to a whole row of attention logits), and with batch norm in the
    head the biases before each batch norm and the final LayerNorm's bias (shifts of every row
    alike, removed by the batch mean)."""
    width = VIT["width"]
    grads = [student.backbone.blocks[0].attn.qkv.bias.grad[width:2 * width]]
    if use_bn:
        grads += [student.backbone.norm.bias.grad, student.head.mlp[0].bias.grad, student.head.mlp[3].bias.grad]
    return grads


def dino_loss(student_out, teacher_out, center, views, student_temp, teacher_temp):
    """main_dino.py DINOLoss.forward (without its centre update, done after the step as there)."""
    student_out = (student_out / student_temp).chunk(views)
    teacher_out = F.softmax((teacher_out - center) / teacher_temp, dim=-1).detach().chunk(2)
    total, terms = 0, 0
    for iq, q in enumerate(teacher_out):
        for v in range(len(student_out)):
            if v == iq:
                continue
            total += torch.sum(-q * F.log_softmax(student_out[v], dim=-1), dim=-1).mean()
            terms += 1
    return total / terms


def run_case(initial, globals_, locals_, use_bn, norm_last_layer, resample, groups):
    s = SETTINGS
    student = make_model(resample, use_bn, norm_last_layer)
    student.load_state_dict(initial)
    teacher = make_model(resample, use_bn, norm_last_layer)
    teacher.load_state_dict(student.state_dict())  # main_dino.py: the teacher starts as the student
    for p in teacher.parameters():
        p.requires_grad = False
    params = [(n, p) for n, p in student.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([{"params": [p for n, p in params if decayed(n, p, groups)]},
                                   {"params": [p for n, p in params if not decayed(n, p, groups)], "weight_decay": 0.0}],
                                  foreach=False)
    center = torch.zeros(1, HEAD["out_dim"])
    views = 2 + LOCAL_CROPS
    losses, clipped, fed, invariant_grads = [], [], [], []
    for it in range(STEPS_RUN):
        sch = vitpeft_schedules(it)
        fed.append(sch)
        for i, group in enumerate(optimizer.param_groups):
            group["lr"] = sch["lr"]
            if i == 0:
                group["weight_decay"] = sch["wd"]
        with torch.no_grad():
            teacher_out = teacher([globals_])
        student_out = student([globals_, locals_])
        loss = dino_loss(student_out, teacher_out, center, views, s["student_temp"], sch["temp"])
        optimizer.zero_grad()
        loss.backward()
        invariant_grads.append(max(g.abs().max().item() for g in invariant_slices(student, use_bn)))
        count = 0
        for _, p in student.named_parameters():  # utils.clip_gradients
            if p.grad is not None:
                norm = p.grad.data.norm(2)
                coef = s["clip"] / (norm + 1e-6)
                if coef < 1:
                    p.grad.data.mul_(coef)
                    count += 1
        clipped.append(count)
        if it < s["freeze_last_layer"]:  # utils.cancel_gradients_last_layer, by step
            for n, p in student.named_parameters():
                if "last_layer" in n:
                    p.grad = None
        optimizer.step()
        with torch.no_grad():
            m = sch["momentum"]
            for ps, pt in zip(student.parameters(), teacher.parameters()):
                pt.data.mul_(m).add_((1 - m) * ps.detach().data)
            center = center * s["center_momentum"] + teacher_out.mean(dim=0, keepdim=True) * (1 - s["center_momentum"])
        losses.append(loss.item())
    return dict(losses=losses, clipped=clipped, fed=fed, center=center, invariant_grads=invariant_grads,
                student=exported(student, norm_last_layer), teacher=exported(teacher, norm_last_layer),
                trainable=len(params))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                                  "test", "fixtures", "parity", "dino_steps.safetensors"))
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    globals_ = torch.randn(2 * BATCH, 3, VIT["img_size"], VIT["img_size"])
    locals_ = torch.randn(LOCAL_CROPS * BATCH, 3, LOCAL_SIZE, LOCAL_SIZE)
    tensors = {"globals": globals_.permute(0, 2, 3, 1).contiguous(), "locals": locals_.permute(0, 2, 3, 1).contiguous()}
    meta = {"generator": "scripts/parity/make_dino_fixture.py (torch " + torch.__version__ + ")",
            "globals": "[4,8,8,3] NHWC: 2 global views x batch 2, view-major",
            "locals": "[4,4,4,3] NHWC: 2 local views x batch 2, view-major",
            "settings": repr(SETTINGS), "vit": repr(VIT), "head": repr(HEAD)}
    sched = [vitpeft_schedules(i) for i in range(STEPS_RUN)]
    for key in ("lr", "wd", "temp", "momentum"):
        tensors[f"schedule.{key}"] = torch.tensor([x[key] for x in sched], dtype=torch.float32)
    s = SETTINGS
    n = s["steps"]
    dino = {"lr": dino_cosine_scheduler(s["lr"], 0.0, n, s["warmup"]), "wd": dino_cosine_scheduler(*s["weight_decay"], n),
            "momentum": dino_cosine_scheduler(s["teacher_momentum"], 1.0, n),
            "temp": np.concatenate((np.linspace(s["teacher_temp"][0], s["teacher_temp"][1], s["teacher_temp"][2]),
                                    np.ones(n - s["teacher_temp"][2]) * s["teacher_temp"][1]))}
    for key in ("lr", "wd", "temp", "momentum"):
        print(f"schedule {key:8s} vitpeft {[round(x[key], 6) for x in sched]}  DINO cosine_scheduler/linspace {np.round(dino[key][:STEPS_RUN], 6).tolist()}")

    for case, use_bn, norm_last_layer in (("plain", False, True), ("bn", True, False)):
        model = make_model("timm", use_bn, norm_last_layer)
        randomize(model, norm_last_layer)
        initial = {k: v.clone() for k, v in model.state_dict().items()}
        ref = run_case(initial, globals_, locals_, use_bn, norm_last_layer, "timm", "vitpeft")
        for name, t in exported(model, norm_last_layer).items():
            tensors[f"{case}.initial.{name}"] = t
        tensors[f"{case}.loss"] = torch.tensor(ref["losses"], dtype=torch.float32)
        tensors[f"{case}.center"] = ref["center"].reshape(-1).contiguous()
        for name, t in ref["student"].items():
            tensors[f"{case}.student.{name}"] = t
        for name, t in ref["teacher"].items():
            tensors[f"{case}.teacher.{name}"] = t
        print(f"{case}: losses {ref['losses']}, gradients clipped per step {ref['clipped']} of {ref['trainable']}, "
              f"max |gradient| of the invariant slices per step {['%.2g' % g for g in ref['invariant_grads']]}")
        # The differences from DINO's code where vitpeft documents another choice.
        for label, resample, groups in (("DINO interpolate_pos_encoding", "dino", "vitpeft"), ("DINO get_params_groups", "timm", "dino")):
            other = run_case(initial, globals_, locals_, use_bn, norm_last_layer, resample, groups)
            dl = max(abs(a - b) for a, b in zip(other["losses"], ref["losses"]))
            dw = max((other["student"][k] - v).abs().max().item() for k, v in ref["student"].items())
            worst = max(ref["student"], key=lambda k: (other["student"][k] - ref["student"][k]).abs().max().item())
            line = f"max|loss diff| {dl:.3g}, max|student weight diff| {dw:.3g} (at {worst})"
            print(f"  with {label}: {line}")
            meta[f"{case}.diff_vs.{label}"] = line
    write_safetensors(os.path.normpath(args.out), tensors, meta)
    print(f"wrote {os.path.normpath(args.out)}: {os.path.getsize(args.out)} bytes, {len(tensors)} tensors")


if __name__ == "__main__":
    main()
