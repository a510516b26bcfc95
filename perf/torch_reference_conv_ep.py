#!/usr/bin/env python3
"""PyTorch reference of Equilibrium Propagation on the 4-conv CIFAR-10 network (timing baseline).

What this is
------------
A straightforward PyTorch implementation of symmetric EP on the convolutional
Hopfield network of Laborieux et al. 2021, "Scaling Equilibrium Propagation to
Deep ConvNets by Drastically Reducing its Gradient Estimator Bias" (the P_CNN
model of their repository), written the way that code computes forces: every
relaxation step builds the primitive function Phi and obtains dPhi/ds with
torch.autograd.grad; the update differentiates (Phi(s-) - Phi(s+)) / (2 beta)
with respect to the parameters. It times training samples per second on random
CIFAR-shaped data, as the baseline of perf/compare_torch_conv.sh. It is NOT part
of the engine and nothing in the engine imports it.

Model (Laborieux et al. 2021, Sec. 4 and their P_CNN)
-----------------------------------------------------
  input 3x32x32; conv 3x3 3->128->256->512->512 (stride 1), padding 1,1,1,0,
  each followed by 2x2 max-pooling (stride 2): state shapes 128x16x16,
  256x8x8, 512x4x4, 512x1x1; a dense 512->10 read-out outside the energy
  (softmax / cross-entropy cost).
  rho(s) = clamp(s, 0, 1) (their my_hard_sig: (1 + hardtanh(2s - 1)) / 2).
  Phi(x, s) = sum_l sum( P(conv_l(s_{l-1})) * s_l )            (s_0 = x)
              - beta * CE(W_out s_L + b_out, y)
  dynamics, synchronous fixed point: s_l <- rho(dPhi/ds_l) for all l at once.
  Training step (symmetric EP, "thirdphase"): T1 free steps from 0 with
  beta = 0, then T2 steps from the free state at +beta and at -beta; grad =
  d/dtheta [(Phi(s-, -beta) - Phi(s+, +beta)) / (2 beta)], batch-averaged;
  SGD with momentum (torch.optim.SGD).
  Convolutions keep their PyTorch default initialisation (the published code
  rescales it by a per-layer gain; timing does not depend on the values).

Output: one JSON line on stdout: ms per batch (median over --repeats timed
training steps after --warmup untimed ones), samples_per_s, the shape and the
BLAS in use.

How to run (Debian's python3-torch lives in /usr/bin/python3's dist-packages):
  /usr/bin/python3 perf/torch_reference_conv_ep.py --t-free 5 --t-nudge 2 --batch 16 --threads 1
  /usr/bin/python3 perf/torch_reference_conv_ep.py --selfcheck   # autograd field == closed form

The published recipe is T1 = 250, T2 = 25 (--t-free 250 --t-nudge 25): about
300 sweeps per sample, minutes per batch on a CPU. Time scales linearly with
T1 + 2 T2 (the phases dominate; the update is one more forward/backward), so
a short-T measurement can be scaled; the JSON reports the steps per batch.
"""

import argparse
import json
import os
import statistics
import sys

import torch_ep_common


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="PyTorch EP baseline for the 4-conv CIFAR-10 network (autograd forces).")
    torch_ep_common.add_common_args(
        p, t_free=250, t_nudge=25, warmup=1, repeats=3,
        selfcheck_help="check the autograd field against a closed form on a small net, then exit")
    p.add_argument("--channels", default="128,256,512,512", help="conv output channels")
    p.add_argument("--paddings", default="1,1,1,0", help="conv paddings")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    a = torch_ep_common.parse_common(p, argv)
    not_ints = "--channels and --paddings must be comma-separated integers"
    a.channel_list = torch_ep_common.int_list(p, a.channels, not_ints)
    a.padding_list = torch_ep_common.int_list(p, a.paddings, not_ints)
    if len(a.channel_list) != len(a.padding_list) or not a.channel_list:
        p.error("--channels and --paddings need the same number of entries")
    return a


ARGS = parse_args()
# Must happen before torch (and its BLAS) is loaded.
torch = torch_ep_common.import_torch(ARGS, "torch_reference_conv_ep.py")
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch_ep_common import rho  # noqa: E402



class ConvEP(nn.Module):
    """P_CNN: conv + 2x2 max-pool layers in the energy, a softmax read-out outside it."""

    def __init__(self, in_channels, in_size, channels, paddings, classes):
        super().__init__()
        self.convs = nn.ModuleList()
        self.shapes = []
        size, c_in = in_size, in_channels
        for c_out, pad in zip(channels, paddings):
            self.convs.append(nn.Conv2d(c_in, c_out, 3, stride=1, padding=pad, bias=True))
            size = (size + 2 * pad - 3) + 1  # after the conv
            size = (size - 2) // 2 + 1       # after the pool
            self.shapes.append((c_out, size, size))
            c_in = c_out
        self.readout = nn.Linear(c_in * size * size, classes, bias=True)
        self.pool = nn.MaxPool2d(2, stride=2)

    def Phi(self, x, y, neurons, beta):
        """Per-sample primitive function (vector of size B), as the published code."""
        layers = [x] + neurons
        phi = 0.0
        for idx, conv in enumerate(self.convs):
            phi = phi + torch.sum(self.pool(conv(layers[idx])) * layers[idx + 1], dim=(1, 2, 3))
        if beta != 0.0:
            logits = self.readout(layers[-1].view(x.size(0), -1))
            phi = phi - beta * F.cross_entropy(logits, y, reduction="none")
        return phi

    def init_neurons(self, mbs, device):
        return [torch.zeros((mbs,) + shape, requires_grad=True, device=device) for shape in self.shapes]

    def forward(self, x, y, neurons, T, beta=0.0):
        return torch_ep_common.autograd_relax(self, x, y, neurons, T, beta)

    def compute_syn_grads(self, x, y, neurons_1, neurons_2, betas):
        torch_ep_common.set_syn_grads(self, x, y, neurons_1, neurons_2, betas)

    def train_step(self, x, y, T1, T2, beta, optimizer):
        neurons = self.forward(x, y, self.init_neurons(x.size(0), x.device), T1, beta=0.0)
        free = [n.detach().clone() for n in neurons]
        plus = self.forward(x, y, [n.clone().requires_grad_(True) for n in free], T2, beta=beta)
        minus = self.forward(x, y, [n.clone().requires_grad_(True) for n in free], T2, beta=-beta)
        self.compute_syn_grads(x, y, [n.detach() for n in plus], [n.detach() for n in minus], (beta, -beta))
        optimizer.step()


def selfcheck(args):
    """The autograd field equals the closed form: conv_l^T-side terms through unpooling."""
    torch.manual_seed(args.seed)
    torch.set_default_dtype(torch.float64)
    model = ConvEP(2, 8, [3, 4], [1, 0], 5)
    B = 3
    x = torch.rand(B, 2, 8, 8)
    y = torch.randint(0, 5, (B,))
    ok = True
    for beta in (0.0, 0.5):
        s = [torch.rand((B,) + shape, requires_grad=True) for shape in model.shapes]
        phi = model.Phi(x, y, s, beta)
        g = torch.autograd.grad(phi, s, grad_outputs=torch.ones(B))
        # Closed form: dPhi/ds_l = P(conv_l(s_{l-1})) + d/ds_l sum(P(conv_{l+1}(s_l)) * s_{l+1}) [- beta dCE/ds_L],
        # the second term by a vector-Jacobian product of the next layer alone.
        layers = [x] + [t.detach() for t in s]
        for l in range(len(s)):
            expected = model.pool(model.convs[l](layers[l])).detach()
            if l + 1 < len(s):
                s_l = layers[l + 1].clone().requires_grad_(True)
                upper = torch.sum(model.pool(model.convs[l + 1](s_l)) * layers[l + 2])
                expected = expected + torch.autograd.grad(upper, s_l)[0]
            else:
                s_l = layers[l + 1].clone().requires_grad_(True)
                ce = F.cross_entropy(model.readout(s_l.view(B, -1)), y, reduction="sum")
                expected = expected - beta * torch.autograd.grad(ce, s_l)[0]
            err = (g[l] - expected).abs().max().item()
            good = err < 1e-10
            ok = ok and good
            print("layer %d beta %.1f: max|autograd - closed form| = %.2e %s" % (l, beta, err, "OK" if good else "FAIL"))
    print("SELFCHECK", "OK" if ok else "FAIL")
    return 0 if ok else 1


def bench(args):
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    model = ConvEP(3, 32, args.channel_list, args.padding_list, 10).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    gen = torch.Generator().manual_seed(args.seed + 1)
    batches = [(torch.randn(args.batch, 3, 32, 32, generator=gen).to(device),
                torch.randint(0, 10, (args.batch,), generator=gen).to(device)) for _ in range(2)]

    def step(i):
        x, y = batches[i % 2]
        model.train_step(x, y, args.t_free, args.t_nudge, args.beta, optimizer)

    times = torch_ep_common.time_steps(args, step, torch.cuda.synchronize if device.type == "cuda" else None)
    median = statistics.median(times)
    print(json.dumps({
        "impl": "torch-autograd-conv",
        "torch_version": torch.__version__,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "batch": args.batch,
        "channels": args.channel_list,
        "paddings": args.padding_list,
        "t_free": args.t_free,
        "t_nudge": args.t_nudge,
        "steps_per_batch": args.t_free + 2 * args.t_nudge,
        "repeats": args.repeats,
        "ms_per_batch": round(median * 1e3, 3),
        "ms_per_batch_min": round(min(times) * 1e3, 3),
        "samples_per_s": round(args.batch / median, 4),
        "blas": torch_ep_common.blas_summary(torch),
    }))
    return 0


def main():
    torch.set_num_threads(ARGS.threads)
    return selfcheck(ARGS) if ARGS.selfcheck else bench(ARGS)


if __name__ == "__main__":
    sys.exit(main())
