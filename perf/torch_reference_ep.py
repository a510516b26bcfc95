#!/usr/bin/env python3
"""PyTorch reference implementation of Equilibrium Propagation (timing baseline).

What this is
------------
A plain PyTorch (CPU) implementation of symmetric Equilibrium Propagation on a
layered (dense) Hopfield network, written the way published EP code computes
forces: Laborieux et al. 2021, "Scaling Equilibrium Propagation to Deep
ConvNets by Drastically Reducing its Gradient Estimator Bias" (the
"prototypical" P_MLP model of their repository). Every relaxation step builds
the primitive function Phi and obtains the field dPhi/ds through
torch.autograd.grad; the parameter update differentiates
(Phi(s+) - Phi(s-)) / (2 beta) with respect to the parameters with autograd.
It is used in perf/ as the baseline that eqprop's throughput is compared
against. It is NOT part of the engine and nothing in the engine imports it.

With --lean the same mathematics is written leanly (no autograd): the
closed-form field, the input drive x @ W_1 + b_1 computed once per batch and
cached, and the contrastive update with explicit matmuls. That is the "lean
loop" comparison point: what a careful PyTorch user gets without a custom
engine.

Model (identical to eqprop's dense Hopfield model, DESIGN.md section 1)
-----------------------------------------------------------------------
  layers n_0-n_1-...-n_L (--layers 784,500,10), W_l of shape (n_{l-1}, n_l),
  b_l of shape (n_l); both initialised uniform(-1/sqrt(n_{l-1}), 1/sqrt(n_{l-1})).
  (The autograd model stores W_l inside nn.Linear, i.e. as W_l^T, like the
  reference code; the mathematics is the same.)
  rho(s) = clamp(s, 0, 1) (hard sigmoid); s_0 = x; s_1..s_L start at 0.
  Phi(x, s) = sum_l sum_batch (rho(s_{l-1}) @ W_l) * rho(s_l)
            + sum_l sum_batch rho(s_l) . b_l
            - beta * C,   C = 0.5 * ||s_L - y||^2 (summed over units and batch)
  Phi plays the role of -E in eqprop's notation (E without the 1/2||s||^2 term,
  which the fixed-point dynamics does not need).
  Fixed-point ("prototypical") dynamics, synchronous:
      s_l <- clamp(dPhi/ds_l, 0, 1)   for every l at once, where
      dPhi/ds_l = W_l^T rho(s_{l-1}) + W_{l+1} rho(s_{l+1}) + b_l
                  [ - beta (s_L - y) for the last layer ]
  (rho' = 1 on the closed interval [0,1]: torch.clamp's backward passes the
  gradient where min <= s <= max, so the autograd field equals the closed form;
  --selfcheck verifies this.)
  Training step on a batch of B samples (symmetric EP):
      free phase     T1 steps from 0 with beta = 0       -> s0
      nudged phases  T2 steps from s0 with +beta / -beta -> s+, s-
      grad W_l = -(1/(2 beta B)) (rho(s+_{l-1})^T rho(s+_l) - rho(s-_{l-1})^T rho(s-_l))
      grad b_l = -(1/(2 beta B)) sum_batch (rho(s+_l) - rho(s-_l))
      then SGD(lr, momentum=0.9) (torch.optim.SGD semantics: buf = m*buf + g,
      p -= lr*buf; first step buf = g).

Data are synthetic (uniform [0,1] inputs, random one-hot labels): this script
measures time only.

Output: one JSON line on stdout with ms_per_batch (median over --repeats
timed training steps, after --warmup untimed ones) and samples_per_s.

How to run (Debian's python3-torch lives in /usr/bin/python3's dist-packages;
a pyenv python3 on PATH may not see it):
  /usr/bin/python3 perf/torch_reference_ep.py --selfcheck
  /usr/bin/python3 perf/torch_reference_ep.py                 # autograd (published-code style)
  /usr/bin/python3 perf/torch_reference_ep.py --lean          # lean loop
  /usr/bin/python3 perf/torch_reference_ep.py --threads 2 --batch 256 --layers 784,500,500,10

BLAS: Debian's torch reports BLAS_INFO=generic and calls whatever
libblas.so.3 the alternatives system selects; the JSON "blas" field lists the
BLAS libraries actually mapped into the process and, for OpenBLAS, the kernel
core it selected. OpenBLAS 0.3.21 (Debian 12) does not recognise recent Xeons
(e.g. family 6 model 207) and falls back to its SSE3 "Prescott" kernels, ~4x
slower GEMM than the AVX-512 kernels; pass --openblas-coretype Cooperlake (or
set OPENBLAS_CORETYPE) to force a proper kernel, and compare eqprop only
against a baseline that used the same BLAS core as eqprop's own CPU backend.
  /usr/bin/python3 perf/torch_reference_ep.py --openblas-coretype Cooperlake

Threads: --threads sets torch.set_num_threads and, before torch is imported,
OMP_NUM_THREADS and OPENBLAS_NUM_THREADS (Debian's torch calls the system
libblas.so.3, OpenBLAS when libopenblas0-pthread is installed, whose own thread
pool torch.set_num_threads does not control).
"""

import argparse
import json
import os
import statistics
import sys

import torch_ep_common


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="PyTorch EP baseline (Laborieux et al. 2021 style autograd, or --lean).")
    p.add_argument("--layers", default="784,500,10",
                   help="comma-separated layer sizes, input first (default 784,500,10)")
    torch_ep_common.add_common_args(
        p, t_free=30, t_nudge=10, warmup=3, repeats=20,
        selfcheck_help="check autograd field == closed form and autograd update == lean update, then exit")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--lean", action="store_true",
                   help="closed-form field, cached input drive, explicit-matmul update (no autograd)")
    a = torch_ep_common.parse_common(p, argv)
    a.layer_sizes = torch_ep_common.int_list(p, a.layers, "--layers must be comma-separated integers, e.g. 784,500,10",
                                             skip_empty=True)
    if len(a.layer_sizes) < 2 or min(a.layer_sizes) < 1:
        p.error("--layers needs at least two positive sizes (input and output)")
    return a


ARGS = parse_args()
# Must happen before torch (and its BLAS) is loaded.
torch = torch_ep_common.import_torch(ARGS, "torch_reference_ep.py")
import torch.nn as nn  # noqa: E402
from torch_ep_common import rho  # noqa: E402



# --------------------------------------------------------------------------
# Published-code style: Phi + torch.autograd.grad (Laborieux et al. 2021 P_MLP)
# --------------------------------------------------------------------------
class AutogradEP(nn.Module):
    """Layered Hopfield net; forces by autograd of the primitive function Phi."""

    def __init__(self, sizes, dtype):
        super().__init__()
        self.sizes = sizes
        self.synapses = nn.ModuleList()
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            lin = nn.Linear(n_in, n_out, bias=True).to(dtype)
            bound = 1.0 / (n_in ** 0.5)
            with torch.no_grad():
                lin.weight.uniform_(-bound, bound)  # stores W_l^T, shape (n_l, n_{l-1})
                lin.bias.uniform_(-bound, bound)
            self.synapses.append(lin)

    def Phi(self, x, y, neurons, beta):
        """Per-sample primitive function (vector of size B), as the reference code."""
        layers = [x] + neurons
        phi = 0.0
        for idx, syn in enumerate(self.synapses):
            phi = phi + torch.sum(syn(rho(layers[idx])) * rho(layers[idx + 1]), dim=1).squeeze()
        if beta != 0.0:
            L = 0.5 * torch.sum((layers[-1] - y) ** 2, dim=1).squeeze()
            phi = phi - beta * L
        return phi

    def init_neurons(self, mbs, dtype, device):
        return [torch.zeros((mbs, n), requires_grad=True, dtype=dtype, device=device)
                for n in self.sizes[1:]]

    def forward(self, x, y, neurons, T, beta=0.0):
        return torch_ep_common.autograd_relax(self, x, y, neurons, T, beta)

    def compute_syn_grads(self, x, y, neurons_1, neurons_2, betas):
        torch_ep_common.set_syn_grads(self, x, y, neurons_1, neurons_2, betas)

    def train_step(self, x, y, T1, T2, beta, optimizer):
        neurons = self.init_neurons(x.size(0), x.dtype, x.device)
        neurons = self.forward(x, y, neurons, T1, beta=0.0)
        neurons_0 = [n.detach().clone().requires_grad_(True) for n in neurons]
        neurons = self.forward(x, y, neurons, T2, beta=beta)
        neurons_1 = [n.detach().clone() for n in neurons]
        neurons = [n.detach().clone().requires_grad_(True) for n in neurons_0]
        neurons = self.forward(x, y, neurons, T2, beta=-beta)
        neurons_2 = [n.detach().clone() for n in neurons]
        self.compute_syn_grads(x, y, neurons_1, neurons_2, (beta, -beta))
        optimizer.step()
        return neurons_0, neurons_1, neurons_2

    def weights(self):
        """W_l in (n_{l-1}, n_l) layout and b_l, detached copies."""
        return ([s.weight.detach().t().contiguous() for s in self.synapses],
                [s.bias.detach().clone() for s in self.synapses])


# --------------------------------------------------------------------------
# Lean loop: closed-form field, cached input drive, explicit-matmul update
# --------------------------------------------------------------------------
class LeanEP:
    def __init__(self, W, b, lr, momentum):
        self.W = [w.clone().contiguous() for w in W]  # (n_{l-1}, n_l)
        self.b = [v.clone() for v in b]
        self.lr = lr
        self.momentum = momentum
        self.bufW = [None] * len(W)
        self.bufb = [None] * len(b)
        self.gW = [None] * len(W)
        self.gb = [None] * len(b)

    @staticmethod
    def init_neurons(mbs, sizes, dtype, device):
        return [torch.zeros((mbs, n), dtype=dtype, device=device) for n in sizes[1:]]

    def relax(self, drive1, y, s, T, beta):
        """T synchronous fixed-point steps. drive1 = rho(x) @ W_1 + b_1 (cached).
        States stay in [0,1], so rho(s) = s and is not recomputed."""
        W, b = self.W, self.b
        L = len(W)
        for _ in range(T):
            new = []
            for l in range(L):
                if l == 0:
                    h = drive1.clone() if L == 1 else torch.addmm(drive1, s[1], W[1].t())
                else:
                    h = torch.addmm(b[l], s[l - 1], W[l])
                    if l + 1 < L:
                        h.addmm_(s[l + 1], W[l + 1].t())
                if l == L - 1 and beta != 0.0:
                    h.sub_(s[l] - y, alpha=beta)
                new.append(h.clamp_(0.0, 1.0))
            s = new
        return s

    def grads(self, x0, sp, sm, beta):
        """Contrastive loss gradient; x0 = rho(x) (shared by both phases)."""
        B = x0.size(0)
        c = -1.0 / (2.0 * beta * B)
        for l in range(len(self.W)):
            if l == 0:
                g = x0.t() @ (sp[0] - sm[0])
            else:
                g = sp[l - 1].t() @ sp[l]
                g.addmm_(sm[l - 1].t(), sm[l], alpha=-1.0)
            self.gW[l] = g.mul_(c)
            self.gb[l] = (sp[l] - sm[l]).sum(0).mul_(c)

    def sgd(self):
        m, lr = self.momentum, self.lr
        for p, g, bufs, i in ([(self.W[i], self.gW[i], self.bufW, i) for i in range(len(self.W))]
                              + [(self.b[i], self.gb[i], self.bufb, i) for i in range(len(self.b))]):
            if bufs[i] is None:
                bufs[i] = g.clone()
            else:
                bufs[i].mul_(m).add_(g)
            p.sub_(bufs[i], alpha=lr)

    @torch.no_grad()
    def train_step(self, x, y, T1, T2, beta):
        sizes = [self.W[0].size(0)] + [w.size(1) for w in self.W]
        x0 = rho(x)
        drive1 = torch.addmm(self.b[0], x0, self.W[0])  # input drive, once per batch
        s0 = self.relax(drive1, y, self.init_neurons(x.size(0), sizes, x.dtype, x.device), T1, 0.0)
        sp = self.relax(drive1, y, s0, T2, beta)
        sm = self.relax(drive1, y, s0, T2, -beta)
        self.grads(x0, sp, sm, beta)
        self.sgd()
        return s0, sp, sm


# --------------------------------------------------------------------------
def make_data(n_batches, B, sizes, dtype, gen):
    xs, ys = [], []
    for _ in range(n_batches):
        x = torch.rand((B, sizes[0]), generator=gen, dtype=dtype)
        lab = torch.randint(0, sizes[-1], (B,), generator=gen)
        y = torch.nn.functional.one_hot(lab, sizes[-1]).to(dtype)
        xs.append(x)
        ys.append(y)
    return xs, ys


def closed_form_field(W, b, x, y, s, beta):
    """dPhi/ds_l = W_l^T rho(s_{l-1}) + W_{l+1} rho(s_{l+1}) + b_l [- beta (s_L - y)]."""
    layers = [x] + s
    L = len(W)
    out = []
    for l in range(L):
        h = rho(layers[l]) @ W[l] + b[l]
        if l + 1 < L:
            h = h + rho(layers[l + 2]) @ W[l + 1].t()
        if l == L - 1:
            h = h - beta * (layers[-1] - y)
        out.append(h)
    return out


def selfcheck(args):
    torch.manual_seed(args.seed)
    dtype = torch.float64
    sizes = [20, 15, 12, 5]
    B, beta, tol = 4, 0.5, 1e-10
    ok = True
    gen = torch.Generator().manual_seed(args.seed)
    xs, ys = make_data(3, B, sizes, dtype, gen)

    def report(name, err):
        nonlocal ok
        good = err < tol
        ok = ok and good
        print("%-58s max|diff| = %.3e  %s" % (name, err, "OK" if good else "FAIL"))

    for sz in (sizes, [20, 15, 5]):
        model = AutogradEP(sz, dtype)
        W, b = model.weights()
        x, y = xs[0][:, :sz[0]].contiguous(), ys[0]
        # 1) autograd field == closed form, at random interior states and at states
        #    with units pinned at the bounds 0 and 1 (rho' = 1 on the closed interval).
        for label, make in (("interior", lambda n: torch.rand((B, n), dtype=dtype, generator=gen)),
                            ("on bounds", lambda n: torch.randint(0, 2, (B, n), generator=gen).to(dtype))):
            for bt in (0.0, beta, -beta):
                s = [make(n).requires_grad_(True) for n in sz[1:]]
                phi = model.Phi(x, y, s, bt)
                g = torch.autograd.grad(phi, s, grad_outputs=torch.ones(B, dtype=dtype))
                cf = closed_form_field(W, b, x, y, [t.detach() for t in s], bt)
                err = max((gi - ci).abs().max().item() for gi, ci in zip(g, cf))
                report("%s field, %s states, beta=%+.1f" % ("-".join(map(str, sz)), label, bt), err)

        # 2) autograd EP (phases + update + SGD) == lean EP, over three steps.
        lean = LeanEP(W, b, args.lr, args.momentum)
        opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
        for step in range(3):
            x, y = xs[step][:, :sz[0]].contiguous(), ys[step]
            a0, ap, am = model.train_step(x, y, 20, 8, beta, opt)
            l0, lp, lm = lean.train_step(x, y, 20, 8, beta)
            err_s = max((u.detach() - v).abs().max().item()
                        for A, Lr in ((a0, l0), (ap, lp), (am, lm)) for u, v in zip(A, Lr))
            err_gW = max((s.weight.grad.t() - g).abs().max().item()
                         for s, g in zip(model.synapses, lean.gW))
            err_gb = max((s.bias.grad - g).abs().max().item() for s, g in zip(model.synapses, lean.gb))
            # closed-form contrastive rule from the states, independent of both codes
            c = -1.0 / (2 * beta * B)
            lp_, lm_ = [x] + [t.detach() for t in ap], [x] + [t.detach() for t in am]
            err_rule = max((s.weight.grad.t() - c * (lp_[l].t() @ lp_[l + 1] - lm_[l].t() @ lm_[l + 1])).abs().max().item()
                           for l, s in enumerate(model.synapses))
            Wa, ba = model.weights()
            err_p = max([(u - v).abs().max().item() for u, v in zip(Wa, lean.W)]
                        + [(u - v).abs().max().item() for u, v in zip(ba, lean.b)])
            tag = "%s step %d" % ("-".join(map(str, sz)), step)
            report(tag + ": states s0/s+/s- autograd vs lean", err_s)
            report(tag + ": grad W autograd vs lean", err_gW)
            report(tag + ": grad b autograd vs lean", err_gb)
            report(tag + ": grad W autograd vs closed-form rule", err_rule)
            report(tag + ": params after SGD step autograd vs lean", err_p)
            nz = sum(int(((t.detach() > 0) & (t.detach() < 1)).sum()) for t in a0)
            if step == 0:
                print("   (free state: %d of %d units strictly inside (0,1))"
                      % (nz, B * sum(sz[1:])))
    print("SELFCHECK", "OK" if ok else "FAIL")
    return 0 if ok else 1


def bench(args):
    torch.manual_seed(args.seed)
    dtype = torch.float32 if args.dtype == "float32" else torch.float64
    sizes = args.layer_sizes
    gen = torch.Generator().manual_seed(args.seed + 1)
    nb = min(8, args.warmup + args.repeats)
    xs, ys = make_data(nb, args.batch, sizes, dtype, gen)

    model = AutogradEP(sizes, dtype)
    if args.lean:
        W, b = model.weights()
        lean = LeanEP(W, b, args.lr, args.momentum)
        del model

        def step(i):
            lean.train_step(xs[i % nb], ys[i % nb], args.t_free, args.t_nudge, args.beta)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)

        def step(i):
            model.train_step(xs[i % nb], ys[i % nb], args.t_free, args.t_nudge, args.beta, opt)

    times = torch_ep_common.time_steps(args, step)
    med = statistics.median(times)
    out = {
        "impl": "torch-lean" if args.lean else "torch-autograd",
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "batch": args.batch,
        "layers": sizes,
        "t_free": args.t_free,
        "t_nudge": args.t_nudge,
        "beta": args.beta,
        "dtype": args.dtype,
        "repeats": args.repeats,
        "ms_per_batch": round(med * 1e3, 4),
        "ms_min": round(min(times) * 1e3, 4),
        "ms_mean": round(statistics.mean(times) * 1e3, 4),
        "samples_per_s": round(args.batch / med, 2),
        "blas": torch_ep_common.blas_summary(torch),
    }
    print(json.dumps(out))
    return 0


def main():
    torch.set_num_threads(ARGS.threads)
    if ARGS.selfcheck:
        return selfcheck(ARGS)
    return bench(ARGS)


if __name__ == "__main__":
    sys.exit(main())
