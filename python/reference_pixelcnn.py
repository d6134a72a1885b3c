"""The reference Gated PixelCNN (pixelx's docs/architecture.md), written independently of pixelx in PyTorch.

Used by pixelx's test suite (logit parity with an export) and benchmarks (training speed of
the PyTorch baseline). It follows the original project's structure: the vertical convolution is
padded on all sides and cropped, masks are buffers multiplied in on every forward.

    python reference_pixelcnn.py parity MODEL.safetensors BATCH.safetensors
    python reference_pixelcnn.py train-speed --channels 3 --hidden-fmaps 30 ... --threads 2
"""
import argparse
import json
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def make_mask(cout, cin, kh, kw, channels, kind):
    """Rows above the centre, left of centre in the centre row, centre by colour group."""
    mask = np.zeros((cout, cin, kh, kw), dtype=np.float32)
    yc, xc = kh // 2, kw // 2
    mask[:, :, :yc, :] = 1
    mask[:, :, yc, :xc] = 1
    go = (np.arange(cout) % channels)[:, None]
    gi = (np.arange(cin) % channels)[None, :]
    mask[:, :, yc, xc] = (gi < go) if kind == "A" else (gi <= go)
    return torch.from_numpy(mask)


class MaskedConv2d(nn.Conv2d):
    def __init__(self, cin, cout, kernel, kind, channels, padding=0):
        super().__init__(cin, cout, kernel, padding=padding)
        kh, kw = self.kernel_size
        self.register_buffer("mask", make_mask(cout, cin, kh, kw, channels, kind))

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class CroppedConv2d(nn.Conv2d):
    """Vertical-stack convolution: returns (rows i-k/2..i, rows i-k/2-1..i-1) views."""

    def forward(self, x):
        out = super().forward(x)
        kh = self.kernel_size[0]
        return out[:, :, 1:-kh, :], out[:, :, : -kh - 1, :]


def gate(t):
    a, b = torch.chunk(t, 2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


def shift(v_pre, v_top):
    return torch.cat([v_top[:, :, :1, :], v_pre[:, :, :-1, :]], dim=2)


class CausalBlock(nn.Module):
    def __init__(self, channels, fmaps, k):
        super().__init__()
        self.v_conv = CroppedConv2d(channels, 2 * fmaps, (k // 2 + 1, k), padding=(k // 2 + 1, k // 2))
        self.v_fc = nn.Conv2d(channels, 2 * fmaps, 1)
        self.v_to_h = nn.Conv2d(2 * fmaps, 2 * fmaps, 1)
        self.h_conv = MaskedConv2d(channels, 2 * fmaps, (1, k), "A", channels, padding=(0, k // 2))
        self.h_fc = MaskedConv2d(fmaps, fmaps, 1, "B", channels)

    def forward(self, x):
        v, v_top = self.v_conv(x)
        v_pre = v + self.v_fc(x)
        h_pre = self.h_conv(x) + self.v_to_h(shift(v_pre, v_top))
        return gate(v_pre), self.h_fc(gate(h_pre))


class GatedBlock(nn.Module):
    def __init__(self, channels, fmaps, k, classes):
        super().__init__()
        self.v_conv = CroppedConv2d(fmaps, 2 * fmaps, (k // 2 + 1, k), padding=(k // 2 + 1, k // 2))
        self.v_fc = nn.Conv2d(fmaps, 2 * fmaps, 1)
        self.v_to_h = MaskedConv2d(2 * fmaps, 2 * fmaps, 1, "B", channels)
        self.h_conv = MaskedConv2d(fmaps, 2 * fmaps, (1, k), "B", channels, padding=(0, k // 2))
        self.h_fc = MaskedConv2d(fmaps, fmaps, 1, "B", channels)
        self.h_skip = MaskedConv2d(fmaps, fmaps, 1, "B", channels)
        self.label_embedding = nn.Embedding(classes, 2 * fmaps)

    def forward(self, v_in, h_in, skip, label):
        e = self.label_embedding(label)[:, :, None, None]
        v, v_top = self.v_conv(v_in)
        v_pre = v + self.v_fc(v_in) + e
        h_pre = self.h_conv(h_in) + self.v_to_h(shift(v_pre, v_top)) + e
        g = gate(h_pre)
        return gate(v_pre) + v_in, self.h_fc(g) + h_in, skip + self.h_skip(g)


class PixelCNN(nn.Module):
    def __init__(self, channels, levels, fmaps, out_fmaps, layers, k1, k2, classes):
        super().__init__()
        self.channels, self.levels, self.fmaps = channels, levels, fmaps
        self.causal_conv = CausalBlock(channels, fmaps, k1)
        self.hidden_conv = nn.ModuleList([GatedBlock(channels, fmaps, k2, classes) for _ in range(layers)])
        self.label_embedding = nn.Embedding(classes, fmaps)
        self.out_hidden_conv = MaskedConv2d(fmaps, out_fmaps, 1, "B", channels)
        self.out_conv = MaskedConv2d(out_fmaps, channels * levels, 1, "B", channels)

    def forward(self, x, label):
        n, c, h, w = x.shape
        v, hs = self.causal_conv(x)
        skip = x.new_zeros((n, self.fmaps, h, w))
        for block in self.hidden_conv:
            v, hs, skip = block(v, hs, skip, label)
        out = F.relu(skip + self.label_embedding(label)[:, :, None, None])
        out = F.relu(self.out_hidden_conv(out))
        return self.out_conv(out).view(n, self.levels, c, h, w)


def model_from_spec(spec):
    return PixelCNN(spec["channels"], spec["levels"], spec["hidden_fmaps"], spec["out_hidden_fmaps"],
                    spec["hidden_layers"], spec["causal_ksize"], spec["hidden_ksize"], spec["classes"])


def parity(model_path, batch_path, tolerance):
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(model_path, "pt") as f:
        spec = json.loads(f.metadata()["pixelx.spec"])
    model = model_from_spec(spec)
    state = load_file(model_path)
    own = model.state_dict()
    for name, tensor in own.items():
        if name.endswith(".mask") and not torch.equal(tensor, state[name]):
            print(f"mask {name} differs from the reference layout's", file=sys.stderr)
            return 1
    model.load_state_dict(state, strict=True)
    batch = load_file(batch_path)
    with torch.no_grad():
        logits = model(batch["x"], batch["labels"].long())
    diff = (logits - batch["logits"]).abs().max().item()
    print(json.dumps({"max_abs_diff": diff, "shape": list(logits.shape)}))
    return 0 if diff <= tolerance else 1


def train_speed(args):
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = model_from_spec(vars(args) | {"classes": 10}).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-4)
    x_levels = torch.randint(0, args.levels, (args.batch_size, args.channels, args.size, args.size)).to(device)
    x = x_levels.float() / (args.levels - 1)
    labels = torch.randint(0, 10, (args.batch_size,)).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            logits = model(x, labels)
        loss = F.cross_entropy(logits.float(), x_levels)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    seconds = time.perf_counter() - start
    import resource  # peak resident memory of this process (KiB on Linux)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"images_per_sec": args.steps * args.batch_size / seconds, "seconds": seconds,
                      "peak_rss_mb": peak_rss_mb}))
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    par = sub.add_parser("parity")
    par.add_argument("model")
    par.add_argument("batch")
    par.add_argument("--tolerance", type=float, default=1e-4)
    sp = sub.add_parser("train-speed")
    for name, default in [("channels", 3), ("levels", 2), ("hidden_fmaps", 30), ("out_hidden_fmaps", 10),
                          ("hidden_layers", 6), ("causal_ksize", 7), ("hidden_ksize", 7), ("batch_size", 32),
                          ("size", 28), ("steps", 10), ("warmup", 2), ("threads", 2)]:
        sp.add_argument("--" + name.replace("_", "-"), dest=name, type=int, default=default)
    sp.add_argument("--channels-last", action="store_true", help="NHWC model and input (not in the original)")
    sp.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    sp.add_argument("--bf16", action="store_true", help="bf16 autocast for the forward pass (not in the original)")
    args = p.parse_args()
    if args.cmd == "parity":
        return parity(args.model, args.batch, args.tolerance)
    return train_speed(args)


if __name__ == "__main__":
    sys.exit(main())
