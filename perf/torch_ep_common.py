"""What the PyTorch EP timing baselines share (perf/torch_reference_ep.py, dense;
perf/torch_reference_conv_ep.py, convolutional): the common arguments and
their checks, the timing loop, the thread environment set before torch loads its BLAS, the torch
import, rho, the autograd relaxation and EP gradient, and the BLAS summary of the JSON output. Not part of the engine.
"""
import os
import sys
import time


def add_common_args(parser, t_free, t_nudge, warmup, repeats, selfcheck_help):
    """The options every baseline takes (checked by check_common_args), with the
    script's defaults for the step counts and the number of timed steps."""
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--t-free", type=int, default=t_free, help="free-phase steps T1")
    parser.add_argument("--t-nudge", type=int, default=t_nudge, help="steps of each nudged phase T2")
    parser.add_argument("--beta", type=float, default=0.5)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (and BLAS threads)")
    parser.add_argument("--warmup", type=int, default=warmup, help="untimed training steps")
    parser.add_argument("--repeats", type=int, default=repeats, help="timed training steps")
    parser.add_argument("--selfcheck", action="store_true", help=selfcheck_help)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--openblas-coretype", default=None, metavar="NAME",
                        help="set OPENBLAS_CORETYPE (e.g. Cooperlake, SkylakeX, Haswell) before torch "
                             "loads OpenBLAS; default: leave the environment as it is. OpenBLAS 0.3.21 "
                             "does not recognise recent Xeons and falls back to its SSE3 'Prescott' "
                             "kernels (about 4x slower GEMM); the JSON reports the core in use")


def time_steps(args, step, synchronize=None):
    """Seconds of each timed call of step(i), i in [0, warmup + repeats): the first
    --warmup calls are not timed; synchronize() (if given) before and after each."""
    times = []
    for i in range(args.warmup + args.repeats):
        if synchronize:
            synchronize()
        start = time.perf_counter()
        step(i)
        if synchronize:
            synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    return times


def parse_common(parser, argv):
    """parser's arguments from argv, the common ones checked (check_common_args)."""
    a = parser.parse_args(argv)
    check_common_args(parser, a)
    return a


def check_common_args(parser, a):
    """--batch, --threads, --repeats >= 1; step counts >= 0; beta != 0."""
    for name in ("batch", "threads", "repeats"):
        if getattr(a, name) < 1:
            parser.error("--%s must be >= 1" % name)
    if a.t_free < 0 or a.t_nudge < 0 or a.warmup < 0:
        parser.error("--t-free, --t-nudge and --warmup must be >= 0")
    if a.beta == 0.0:
        parser.error("--beta must be non-zero (symmetric EP divides by 2 beta)")


def int_list(parser, text, message, skip_empty=False):
    """The comma-separated integers of text (without the empty items if skip_empty);
    a usage error with message otherwise."""
    try:
        return [int(v) for v in text.split(",") if v.strip() or not skip_empty]
    except ValueError:
        parser.error(message)


def import_torch(args, script):
    """Sets the thread counts (and OPENBLAS_CORETYPE) while torch and its BLAS are
    not yet loaded, then imports torch; exits with a clear message without it."""
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
    if args.openblas_coretype:
        os.environ["OPENBLAS_CORETYPE"] = args.openblas_coretype
    try:
        import torch
    except ImportError as e:
        sys.exit("%s: cannot import torch with %s (%s). Debian's python3-torch is installed for "
                 "/usr/bin/python3; run: /usr/bin/python3 %s ..." % (script, sys.executable, e, sys.argv[0]))
    return torch


def rho(s):
    """The hard sigmoid clamp(s, 0, 1) of Laborieux et al. 2021."""
    return s.clamp(0.0, 1.0)


def autograd_relax(model, x, y, neurons, T, beta):
    """T steps of s <- rho(dPhi/ds) with the forces by autograd of model.Phi(x, y, s, beta)
    summed over the batch: the published P_MLP / P_CNN dynamics (Laborieux et al. 2021)."""
    import torch
    mbs = x.size(0)
    for _ in range(T):
        phi = model.Phi(x, y, neurons, beta)
        init_grads = torch.ones(mbs, dtype=x.dtype, device=x.device, requires_grad=True)
        grads = torch.autograd.grad(phi, neurons, grad_outputs=init_grads, create_graph=False)
        for idx in range(len(neurons)):
            neurons[idx] = rho(grads[idx])
            neurons[idx].requires_grad = True
    return neurons


def set_syn_grads(model, x, y, neurons_1, neurons_2, betas):
    """Sets p.grad = d/dp [(Phi(s2)-Phi(s1))/(beta1-beta2)] with Phi averaged over batch.

    With (s1, beta1) = (s+, +beta) and (s2, beta2) = (s-, -beta) this is
    -(1/(2 beta B)) dPhi/dp|_{s+} + (1/(2 beta B)) dPhi/dp|_{s-}, the loss gradient.
    """
    beta_1, beta_2 = betas
    model.zero_grad()
    phi_1 = model.Phi(x, y, neurons_1, beta_1).mean()
    phi_2 = model.Phi(x, y, neurons_2, beta_2).mean()
    delta_phi = (phi_2 - phi_1) / (beta_1 - beta_2)
    delta_phi.backward()


def blas_summary(torch):
    """The BLAS torch was built with and the one loaded, for the JSON output."""
    info = {}
    cfg = torch.__config__.show()
    for key in ("BLAS_INFO", "LAPACK_INFO"):
        i = cfg.find(key + "=")
        if i >= 0:
            info[key] = cfg[i + len(key) + 1:].split(",")[0].strip()
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                base = os.path.basename(path)
                if any(k in base for k in ("blas", "mkl_", "libmkl", "lapack", "dnnl")):
                    libs.add(os.path.realpath(path))
    except OSError:
        pass
    info["loaded_libs"] = sorted(libs)
    for path in info["loaded_libs"]:
        if "openblas" in os.path.basename(path):
            try:
                import ctypes
                lib = ctypes.CDLL(path)
                lib.openblas_get_corename.restype = ctypes.c_char_p
                lib.openblas_get_config.restype = ctypes.c_char_p
                info["openblas_corename"] = lib.openblas_get_corename().decode()
                info["openblas_config"] = lib.openblas_get_config().decode()
                info["openblas_num_threads"] = int(lib.openblas_get_num_threads())
            except (OSError, AttributeError):
                pass
            break
    par = torch.__config__.parallel_info()
    for line in par.splitlines():
        if "parallel backend" in line:
            info["parallel_backend"] = line.split(":", 1)[1].strip()
    info["mkldnn"] = bool(getattr(torch.backends, "mkldnn", None) and torch.backends.mkldnn.is_available())
    return info
