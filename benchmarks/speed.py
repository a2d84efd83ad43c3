"""Training-step speed of this framework next to PyTorch, and the fraction of GEMM throughput it reaches.

    python benchmarks/speed.py                  # CPU, float32: 64-128-10 @ batch 32, 784-256-256-10 @ 128
    python benchmarks/speed.py --device cuda    # GPU, float32: CuPy vs PyTorch CUDA, 4096-4096-4096-10 @ 1024

One step = forward + cross-entropy loss + backward + Adam update, on batches already on the device (no
data loading, no MLflow, no host transfer). PyTorch runs the same MLP (Linear/ReLU, same initial
weights, torch.optim.Adam with its defaults, zero_grad(set_to_none=True)). The two are timed in
alternating blocks (ours, torch, torch, ours, ...) so that a noisy machine slows both alike; samples/s
is the median over the blocks, with the range beside it.

Roofline: a step's matrix products cost 2*batch*in*out FLOPs each for Z = X @ W.T, dW = dZ.T @ X and
dX = dZ @ W, i.e. 6*batch*sum(in*out) per step. The GEMM throughput of the machine is measured in the
same run with the same library (np.matmul / cupy.matmul): on exactly the step's GEMMs (same shapes and
transposes) and on a large square GEMM. The framework's `input_grad=False` skips dX of the first layer
(as PyTorch does for an input that needs no gradient), so the executed FLOPs are also shown.

On the CPU, PyTorch gets as many threads as the BLAS (threadpoolctl). OpenBLAS may be pinned to an
older kernel by OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE in the environment (the header shows the kernel);
to measure the native one, run this command alone with both unset:
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/speed.py
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from framework.model import MLP  # noqa: E402
from framework.registry import backends, losses, optimizers  # noqa: E402

CPU_CASES = [([64, 128, 10], 32), ([784, 256, 256, 10], 128)]
CUDA_CASES = [([4096, 4096, 4096, 10], 1024)]
N_BATCHES = 8  # distinct batches cycled through (same data for both frameworks)


# ---- the two training steps -------------------------------------------------------------------------

def ours(sizes, batch, backend, seed=0):
    """Our step on `backend`; returns (step(i) -> loss array, synchronize, host weights for torch)."""
    be = backends.create(backend, dtype="float32")
    model = MLP(sizes, "relu", "identity", backend=be, dtype="float32", seed=seed)
    loss, opt = losses.create("cross_entropy"), optimizers.create("adam", lr=1e-3)
    X, y = _data(sizes, batch, seed)
    batches = [(be.asarray(X[i]), be.asarray(y[i], "int64")) for i in range(N_BATCHES)]
    xp = be.xp

    def step(i):
        Xb, yb = batches[i % N_BATCHES]
        out = model.forward(Xb)
        value = loss.forward(xp, out, yb)
        model.backward(loss.backward(xp, out, yb), input_grad=False)
        opt.step(model.params, model.grads)
        return value

    return step, be.synchronize, model.state_dict()


def pytorch(sizes, batch, device, weights, seed=0):
    """The same MLP, loss and optimizer in PyTorch; None when torch (or its CUDA) is missing."""
    import torch

    layers = []
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = torch.nn.Linear(n_in, n_out)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(weights[f"layers.{l}.W"]))
            lin.bias.copy_(torch.from_numpy(weights[f"layers.{l}.b"]))
        layers += [lin, torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers[:-1]).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    X, y = _data(sizes, batch, seed)
    batches = [(torch.from_numpy(X[i]).to(device), torch.from_numpy(y[i]).to(device)) for i in range(N_BATCHES)]
    ce = torch.nn.functional.cross_entropy

    def step(i):
        Xb, yb = batches[i % N_BATCHES]
        opt.zero_grad(set_to_none=True)
        value = ce(net(Xb), yb)
        value.backward()
        opt.step()
        return value

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    return step, sync


def _data(sizes, batch, seed):
    rng = np.random.default_rng(seed + 1)
    X = rng.normal(size=(N_BATCHES, batch, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], (N_BATCHES, batch)).astype(np.int64)
    return X, y


# ---- GEMM throughput --------------------------------------------------------------------------------

def step_gemms(xp, matmul, sizes, batch):
    """A callable running exactly the step's 3 GEMMs per layer (same shapes and transposes as MLP)."""
    rng = np.random.default_rng(0)
    f32 = np.float32
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        A = xp.asarray(rng.normal(size=(batch, n_in)).astype(f32))
        W = xp.asarray((rng.normal(size=(n_out, n_in)) / np.sqrt(n_in)).astype(f32))
        dZ = xp.asarray(rng.normal(size=(batch, n_out)).astype(f32))
        Z, dW, dX = xp.empty((batch, n_out), dtype=f32), xp.empty((n_out, n_in), dtype=f32), xp.empty((batch, n_in), dtype=f32)
        layers.append((A, W, dZ, Z, dW, dX))

    def run():
        for A, W, dZ, Z, dW, dX in layers:
            matmul(A, W.T, out=Z)
            matmul(dZ.T, A, out=dW)
            matmul(dZ, W, out=dX)

    return run


def square_gemm(xp, matmul, n):
    rng = np.random.default_rng(1)
    a = xp.asarray(rng.normal(size=(n, n)).astype(np.float32))
    b = xp.asarray(rng.normal(size=(n, n)).astype(np.float32))
    c = xp.empty((n, n), dtype=np.float32)
    return lambda: matmul(a, b, out=c)


# ---- timing -----------------------------------------------------------------------------------------

def calibrate(fn, sync, target_s):
    """Number of calls that take about target_s (after a warm-up)."""
    for i in range(3):
        fn(i)
    sync()
    n, elapsed = 1, 0.0
    while elapsed < target_s / 4:
        n *= 2
        t = time.perf_counter()
        for i in range(n):
            fn(i)
        sync()
        elapsed = time.perf_counter() - t
    return max(1, int(n * target_s / elapsed))


def block(fn, sync, n):
    """Seconds per call over n calls."""
    sync()
    t = time.perf_counter()
    for i in range(n):
        fn(i)
    sync()
    return (time.perf_counter() - t) / n


def interleaved(contenders, repeats, target_s, settle_s):
    """{name: [seconds per call, one per block]}, blocks alternating in order ABBA... across repeats.

    Between blocks the process sleeps `settle_s`: thread pools spin-wait after their last task
    (OpenBLAS up to ~0.1 s, OpenMP less), and a spinning pool of one contender would steal a core from
    the next contender's block.
    """
    plan = {name: (fn, sync, calibrate(fn, sync, target_s)) for name, (fn, sync) in contenders.items()}
    times = {name: [] for name in plan}
    names = list(plan)
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            fn, sync, n = plan[name]
            time.sleep(settle_s)
            times[name].append(block(fn, sync, n))
    return times


# ---- report -----------------------------------------------------------------------------------------

def flops(sizes, batch):
    """(formula 6*b*sum(in*out), executed with input_grad=False: minus dX of the first layer)."""
    full = 6 * batch * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return full, full - 2 * batch * sizes[0] * sizes[1]


def fmt_rate(samples):
    return f"{samples:>12,.0f}"


def report_case(sizes, batch, times, labels, gemm_rates, show_roofline):
    shape = "-".join(map(str, sizes))
    print(f"\n{shape}, batch {batch}, float32")
    print(f"  {'':34s} {'samples/s':>12s}   {'range over blocks':>25s}   {'ms/step':>8s}")
    med = {}
    for name, ts in times.items():
        if not name.startswith("step:"):
            continue
        m = statistics.median(ts)
        med[name] = m
        lo, hi = batch / max(ts), batch / min(ts)
        print(f"  {labels[name]:34s} {fmt_rate(batch / m)}   {lo:>11,.0f} .. {hi:>11,.0f}   {m * 1e3:8.3f}")
    if "step:ours" in med and "step:torch" in med:
        print(f"  {'framework / PyTorch':34s} {med['step:torch'] / med['step:ours']:11.2f}x")
    if not show_roofline:
        return
    full, executed = flops(sizes, batch)
    print(f"  GEMM FLOPs per step: 6*b*sum(in*out) = {full / 1e6:.1f} MFLOP; "
          f"executed by the framework (no dL/dX of layer 1) = {executed / 1e6:.1f} MFLOP")
    for rate_name, rate in gemm_rates.items():
        print(f"  vs {rate_name}: {rate / 1e9:.1f} GFLOP/s")
        for name, m in med.items():
            line = f"    {labels[name]:32s} {full / m / 1e9:7.1f} GFLOP/s = {full / m / rate:6.1%} (6*b*sum count)"
            if name == "step:ours":
                line += f", {executed / m / rate:6.1%} (executed FLOPs)"
            print(line)


_LIMITS = []  # keeps a threadpoolctl limit alive for the whole run


def header(device, threads=None):
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs ({platform.processor() or 'unknown processor'})")
    blas_threads = None
    try:
        from threadpoolctl import threadpool_info, threadpool_limits

        if threads:
            _LIMITS.append(threadpool_limits(limits=threads, user_api="blas"))

        for info in threadpool_info():
            if info.get("user_api") == "blas":
                blas_threads = info["num_threads"]
                print(f"BLAS: {info.get('internal_api')} {info.get('version')}, kernel {info.get('architecture')}, "
                      f"{info['num_threads']} threads ({Path(info['filepath']).name})")
    except ImportError:
        print("BLAS: threadpoolctl not installed, thread count unknown")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    print(f"load average (1 min) before the run: {load:.2f}"
          + ("  <- other processes are busy: timings are noisy, multi-threaded ones most" if load > 0.5 else ""))
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        if var in os.environ:
            print(f"  {var}={os.environ[var]}")
    if "OPENBLAS_CORETYPE" in os.environ:
        print("  note: OPENBLAS_CORETYPE pins an older kernel; `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "
              "python benchmarks/speed.py` measures the native one")
    return blas_threads or os.cpu_count()


def torch_or_none(device, threads):
    try:
        import torch
    except ImportError:
        print("PyTorch: not installed - its column is skipped (pip install torch)")
        return None
    if device == "cuda" and not torch.cuda.is_available():
        print(f"PyTorch {torch.__version__}: CUDA not available - its column is skipped")
        return None
    if device == "cpu":
        torch.set_num_threads(threads)
        print(f"PyTorch {torch.__version__}: {torch.get_num_threads()} threads (set to the BLAS thread count)")
    else:
        print(f"PyTorch {torch.__version__}: {torch.cuda.get_device_name()}, "
              f"TF32 matmul allowed: {torch.backends.cuda.matmul.allow_tf32}")
    return torch


def steps(sizes, batch, backend: str, device: str, torch):
    """Our training step and (when torch is there) PyTorch's, as contenders with their labels."""
    step, sync, weights = ours(sizes, batch, backend)
    contenders = {"step:ours": (step, sync)}
    labels = {"step:ours": f"framework ({backend} backend)"}
    if torch is not None:
        contenders["step:torch"] = pytorch(sizes, batch, device, weights)
        labels["step:torch"] = f"PyTorch {torch.__version__} ({device.upper()})"
    return contenders, labels, sync


def run_cpu(args):
    threads = header("cpu", args.threads)
    torch = torch_or_none("cpu", threads)
    for sizes, batch in CPU_CASES:
        contenders, labels, _ = steps(sizes, batch, "numpy", "cpu", torch)
        large = sizes == CPU_CASES[-1][0]
        if large:  # the roofline's GEMMs take turns with the steps, so they see the same machine state
            g = step_gemms(np, np.matmul, sizes, batch)
            contenders["gemm:step"] = (lambda i: g(), lambda: None)
            sq = square_gemm(np, np.matmul, args.square)
            contenders["gemm:square"] = (lambda i: sq(), lambda: None)
        times = interleaved(contenders, args.repeats, args.seconds, args.settle)
        rates = {}
        if large:
            full = flops(sizes, batch)[0]
            rates["np.matmul on the step's 9 GEMMs (median)"] = full / statistics.median(times["gemm:step"])
            rates[f"np.matmul {args.square}x{args.square} square (median)"] = (
                2 * args.square**3 / statistics.median(times["gemm:square"]))
        report_case(sizes, batch, times, labels, rates, large)


def run_cuda(args):
    header("cuda")
    try:
        be = backends.create("cupy", dtype="float32")
    except Exception as e:  # noqa: BLE001 - ConfigError says how to fix it
        print(f"--device cuda needs CuPy and a CUDA GPU: {e}")
        return 1
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(be.device_id)
    print(f"CuPy {cupy.__version__}: {props['name'].decode()}, CUPY_TF32={os.environ.get('CUPY_TF32', '0')}")
    torch = torch_or_none("cuda", None)
    for sizes, batch in CUDA_CASES:
        contenders, labels, sync = steps(sizes, batch, "cupy", "cuda", torch)
        g = step_gemms(cupy, cupy.matmul, sizes, batch)
        contenders["gemm:step"] = (lambda i: g(), sync)
        sq = square_gemm(cupy, cupy.matmul, args.square_cuda)
        contenders["gemm:square"] = (lambda i: sq(), sync)
        times = interleaved(contenders, args.repeats, args.seconds, args.settle)
        full = flops(sizes, batch)[0]
        rates = {
            "cupy.matmul on the step's 9 GEMMs (median)": full / statistics.median(times["gemm:step"]),
            f"cupy.matmul {args.square_cuda}x{args.square_cuda} square (median)":
                2 * args.square_cuda**3 / statistics.median(times["gemm:square"]),
        }
        report_case(sizes, batch, times, labels, rates, True)
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--repeats", type=int, default=7, help="timed blocks per contender (interleaved)")
    p.add_argument("--seconds", type=float, default=0.4, help="approximate length of one timed block")
    p.add_argument("--settle", type=float, default=0.3, help="pause before each block (idle thread pools)")
    p.add_argument("--square", type=int, default=2048, help="side of the square CPU GEMM")
    p.add_argument("--square-cuda", type=int, default=8192, help="side of the square GPU GEMM")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for the BLAS and for PyTorch (default: the BLAS's own count)")
    args = p.parse_args(argv)
    if args.device == "cuda":
        return run_cuda(args)
    run_cpu(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
