#!/usr/bin/env python3
"""Times the published PyTorch code of Laborieux et al. 2021 on the 4-conv CIFAR-10 network.

What this is
------------
A timing harness, not an implementation: it imports `model_utils` from a
checkout of the authors' repository (github.com/Laborieux-Axel/Equilibrium-Propagation,
given with --authors-dir; nothing of it is copied here), builds their P_CNN
exactly as their main.py does for the README's CIFAR-10 command
(channels 128-256-512-512, 3x3 kernels, padding 1,1,1,0, 'mmmm' max pooling,
fc 10, softmax read-out, cross-entropy, my_hard_sig, SGD with per-layer rates,
momentum 0.9 and weight decay, --thirdphase i.e. symmetric nudging, betas 0 / beta)
and runs their own `train()` for one epoch on random CIFAR-shaped batches.

How a batch is timed without touching their code: the loader handed to `train()`
records the clock each time it yields a batch; the time between two yields is
one whole training step of their loop (free phase, both nudged phases, the
update and the optimizer step). Their epoch-end evaluation runs after the last
timestamp, so it is not timed.

Output: one JSON line on stdout: ms per batch (median over --repeats timed
steps after --warmup untimed ones), samples_per_s and the shape.

Usage:
  /usr/bin/python3 perf/authors_conv_ep_timing.py --authors-dir DIR --batch 16 --t-free 20 --t-nudge 4 --threads 1
"""
import argparse
import json
import os
import statistics
import sys
import time


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--authors-dir", required=True,
                        help="checkout of Laborieux-Axel/Equilibrium-Propagation (holds model_utils.py)")
    # The authors' CIFAR-10 settings; compare_torch_conv.sh passes the run's own.
    for option, default in (("--batch", 128), ("--t-free", 250), ("--t-nudge", 25), ("--beta", 1.0),
                            ("--threads", 1), ("--repeats", 3), ("--warmup", 1), ("--device", "cpu")):
        parser.add_argument(option, type=type(default), default=default)
    return parser.parse_args()


class TimedLoader:
    """What their train() reads of a DataLoader: batch_size, dataset (len, .train) and iteration.

    Their loop prints progress every len(dataset)/batch_size/10 batches and divides by that
    count, so the dataset claims ten batches at least while only `batches` are yielded.
    """

    class _Dataset:
        def __init__(self, length, train):
            self.length = length
            self.train = train

        def __len__(self):
            return self.length

    def __init__(self, torch, batch_size, batches, train, device):
        self.batch_size = batch_size
        self.batches = batches
        self.dataset = self._Dataset(max(batches, 10) * batch_size, train)
        generator = torch.Generator().manual_seed(1)
        self.x = torch.rand(batch_size, 3, 32, 32, generator=generator).to(device)
        self.y = torch.randint(0, 10, (batch_size,), generator=generator).to(device)
        self.yield_times = []

    def __iter__(self):
        for _ in range(self.batches):
            self.yield_times.append(time.perf_counter())
            yield self.x, self.y
        self.yield_times.append(time.perf_counter())


def main():
    args = parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    sys.path.insert(0, os.path.abspath(args.authors_dir))
    import torch
    torch.set_num_threads(args.threads)
    import model_utils as authors  # the published code, imported unchanged

    channels = [3, 128, 256, 512, 512]
    model = authors.P_CNN(32, channels, [3, 3, 3, 3], [1, 1, 1, 1], [10], authors.make_pools("mmmm"),
                          [1, 1, 1, 0], activation=authors.my_hard_sig, softmax=True).to(args.device)
    lrs = [0.25, 0.15, 0.1, 0.08, 0.05]
    groups = [{"params": model.synapses[i].parameters(), "lr": lrs[i], "weight_decay": 3e-4}
              for i in range(len(model.synapses))]
    optimizer = torch.optim.SGD(groups, momentum=0.9)
    criterion = torch.nn.CrossEntropyLoss(reduction="none").to(args.device)

    train_loader = TimedLoader(torch, args.batch, args.warmup + args.repeats, True, args.device)
    test_loader = TimedLoader(torch, 2, 1, False, args.device)  # their Phi squeezes a batch of 1 to a scalar
    # Their train() prints progress lines; keep stdout for the one JSON line.
    real_stdout = sys.stdout
    sys.stdout = sys.stderr
    try:
        authors.train(model, optimizer, train_loader, test_loader, args.t_free, args.t_nudge,
                      (0.0, args.beta), args.device, 1, criterion, alg="EP", thirdphase=True)
    finally:
        sys.stdout = real_stdout
    stamps = train_loader.yield_times
    step_ms = [1000.0 * (b - a) for a, b in zip(stamps, stamps[1:])][args.warmup:]
    ms = statistics.median(step_ms)
    print(json.dumps({
        "run": "authors_conv_ep", "code": "Laborieux et al. model_utils.P_CNN + train()",
        "device": args.device, "threads": args.threads, "torch": torch.__version__,
        "batch": args.batch, "t_free": args.t_free, "t_nudge": args.t_nudge,
        "ms_per_batch": ms, "samples_per_s": args.batch * 1000.0 / ms,
        "ms_per_batch_all": [round(v, 3) for v in step_ms],
    }))


if __name__ == "__main__":
    main()
