"""Training speed as users run it: the bare step and whole `Trainer.fit` epochs, beside PyTorch and
beside a hand-written NumPy step of the same math.

    python benchmarks/speed.py                  # CPU, float32, 1 thread: 64-128-10 @ 32, 784-256-256-10 @ 128
    python benchmarks/speed.py --device cuda    # GPU, float32: CuPy vs PyTorch CUDA, 4096-4096-4096-10 @ 1024
    python benchmarks/speed.py --optimizer adam # the default experiment's optimizer (no hand-written NumPy step)

The work is the same everywhere: an MLP of Linear + ReLU layers (same initial weights), softmax
cross-entropy on class indices, plain SGD (lr 0.01; `--optimizer adam`: Adam, lr 0.01, defaults otherwise,
torch.optim.Adam with its defaults on the PyTorch side). The contenders, per shape:

    numpy step      hand-written NumPy (CPU only, SGD only): preallocated buffers, in-place ReLU, fused softmax
                    cross-entropy, no dL/dX for the input, in-place SGD - the floor the engine is held to
    framework step  `framework.train_step` (forward, loss, backward, update) on a batch already on the device
    PyTorch step    zero_grad(set_to_none=True), forward, CrossEntropyLoss, backward, SGD step
    framework fit   one `Trainer.fit` epoch (tracking and progress off): shuffle, step, gradient norms,
                    the per-batch record, divergence check, scheduler, callbacks
    PyTorch loop    one epoch of a plain loop: randperm shuffle, then the PyTorch step per batch

Steps are timed on N_BATCHES distinct batches cycled through; epochs on FIT_BATCHES batches of data.
All contenders are timed in alternating blocks (ABC..CBA ...) so a noisy machine slows them alike;
samples/s is the median over the blocks (their range beside it). A ratio is the median of the
per-repeat ratios (the blocks of one repeat run back to back), with their range: a target is met or
missed by that median. A thread count of 1 (default) is set for the BLAS (threadpoolctl) and PyTorch
alike.

Roofline (largest shape): a step's matrix products cost 6*batch*sum(in*out) FLOPs (Z = X @ W.T,
dW = dZ.T @ X, dX = dZ @ W); the GEMM throughput is measured in the same run on exactly the step's
GEMMs and on a large square GEMM, with the same library.

OpenBLAS picks its kernel from the CPU unless OPENBLAS_CORETYPE forces one (the header says which); to
measure the native kernel run the command with it unset:
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

from framework import train_step  # noqa: E402
from framework.engine.data import Dataset, Splits  # noqa: E402
from framework.engine.trainer import Trainer  # noqa: E402
from framework.model import MLP  # noqa: E402
from framework.registry import backends, losses, optimizers  # noqa: E402

TARGETS = {("step", "numpy"): 0.95, ("fit", "step"): 0.90}  # (a, b): least rate a / rate b (CPU)
CPU_CASES = [([64, 128, 10], 32, {**TARGETS, ("fit", "loop"): 2.5}),  # sizes, batch, targets
             ([784, 256, 256, 10], 128, {**TARGETS, ("fit", "loop"): 1.6})]
CUDA_CASES = [([4096, 4096, 4096, 10], 1024, {})]
N_BATCHES = 8        # distinct batches the steps cycle through
FIT_BATCHES = {"cpu": 64, "cuda": 8}   # batches per timed epoch
LR = 0.01
OPTIMIZER = "sgd"    # --optimizer


def _data(sizes, n, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], n).astype(np.int64)
    return X, y


def _batches(sizes, batch):
    """N_BATCHES host batches (X float32 (batch, in), y int64 (batch,)): every step contender's data."""
    X, y = _data(sizes, N_BATCHES * batch)
    return [(X[i * batch:(i + 1) * batch].copy(), y[i * batch:(i + 1) * batch].copy()) for i in range(N_BATCHES)]


# ---- ours -------------------------------------------------------------------------------------------

def framework_step(model, batch):
    """`train_step` on N_BATCHES batches already on the model's backend."""
    be = model.backend
    loss, opt = losses.create("cross_entropy"), optimizers.create(OPTIMIZER, lr=LR)
    batches = [(be.asarray(X), be.asarray(y, "int64")) for X, y in _batches(model.sizes, batch)]

    def step(i):
        train_step(model, loss, opt, *batches[i % N_BATCHES])

    return step


def framework_fit(model, batch, n_batches):
    """One more `Trainer.fit` epoch per call, on n_batches batches (no val/test split, no callbacks)."""
    X, y = _data(model.sizes, n_batches * batch)
    ds = Dataset(X.astype(np.float64), y, "classification", model.sizes[-1], "speed")
    trainer = Trainer(model, losses.create("cross_entropy"), optimizers.create(OPTIMIZER, lr=LR),
                      Splits(ds, None, None), epochs=0, batch_size=batch, seed=0)

    def epoch(i):
        trainer.epochs += 1
        trainer.fit()

    return epoch


def numpy_step(weights, sizes, batch):
    """The same math written by hand for NumPy: the floor. Buffers are preallocated; ReLU is applied in
    place (A_l = Z_l); dZ of the output is softmax(Z) - onehot(y), divided by the batch; no dL/dX."""
    L = len(sizes) - 1
    W = [weights[f"layers.{l}.W"].copy() for l in range(L)]
    b = [weights[f"layers.{l}.b"].copy() for l in range(L)]
    Z = [np.empty((batch, n), np.float32) for n in sizes[1:]]
    dW = [np.empty_like(w) for w in W]
    db = [np.empty_like(v) for v in b]
    dA = [np.empty((batch, n), np.float32) for n in sizes[1:-1]]
    mx, s = np.empty((batch, 1), np.float32), np.empty((batch, 1), np.float32)
    rows = np.arange(batch)
    batches = _batches(sizes, batch)

    def step(i):
        Xb, yb = batches[i % N_BATCHES]
        A = Xb
        for l in range(L):
            np.matmul(A, W[l].T, out=Z[l])
            Z[l] += b[l]
            if l < L - 1:
                np.maximum(Z[l], 0, out=Z[l])
            A = Z[l]
        P = Z[-1]                                   # logits -> probabilities, in place
        np.max(P, axis=1, keepdims=True, out=mx)
        P -= mx
        np.exp(P, out=P)
        np.sum(P, axis=1, keepdims=True, out=s)
        P /= s
        loss = -np.mean(np.log(P[rows, yb]))
        P[rows, yb] -= 1
        P *= 1.0 / batch                            # dZ of the output layer
        dZ = P
        for l in range(L - 1, -1, -1):
            A_prev = Xb if l == 0 else Z[l - 1]
            np.matmul(dZ.T, A_prev, out=dW[l])
            np.sum(dZ, axis=0, out=db[l])
            if l > 0:
                np.matmul(dZ, W[l], out=dA[l - 1])
                dA[l - 1] *= A_prev > 0
                dZ = dA[l - 1]
        for l in range(L):
            dW[l] *= LR
            W[l] -= dW[l]
            db[l] *= LR
            b[l] -= db[l]
        return loss

    return step


# ---- PyTorch ----------------------------------------------------------------------------------------

def torch_net(torch, sizes, weights, device):
    layers = []
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = torch.nn.Linear(n_in, n_out)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(weights[f"layers.{l}.W"]))
            lin.bias.copy_(torch.from_numpy(weights[f"layers.{l}.b"]))
        layers += [lin, torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers[:-1]).to(device)
    opt = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[OPTIMIZER]
    return net, opt(net.parameters(), lr=LR), torch.nn.CrossEntropyLoss()


def torch_step(torch, sizes, batch, weights, device):
    net, opt, ce = torch_net(torch, sizes, weights, device)
    batches = [(torch.from_numpy(X).to(device), torch.from_numpy(y).to(device)) for X, y in _batches(sizes, batch)]

    def step(i):
        Xb, yb = batches[i % N_BATCHES]
        opt.zero_grad(set_to_none=True)
        ce(net(Xb), yb).backward()
        opt.step()

    return step


def torch_loop(torch, sizes, batch, weights, device, n_batches):
    """One epoch of a plain PyTorch loop per call: randperm, then the step on each batch."""
    net, opt, ce = torch_net(torch, sizes, weights, device)
    X, y = _data(sizes, n_batches * batch)
    X, y = torch.from_numpy(X).to(device), torch.from_numpy(y).to(device)
    n = X.shape[0]

    def epoch(i):
        perm = torch.randperm(n, device=device)
        for start in range(0, n, batch):
            idx = perm[start:start + batch]
            opt.zero_grad(set_to_none=True)
            ce(net(X[idx]), y[idx]).backward()
            opt.step()

    return epoch


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
        Z, dW, dX = (xp.empty((batch, n_out), dtype=f32), xp.empty((n_out, n_in), dtype=f32),
                     xp.empty((batch, n_in), dtype=f32))
        layers.append((A, W, dZ, Z, dW, dX))

    def run(i):
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
    return lambda i: matmul(a, b, out=c)


def flops(sizes, batch):
    """(formula 6*b*sum(in*out), executed without dL/dX of the first layer)."""
    full = 6 * batch * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return full, full - 2 * batch * sizes[0] * sizes[1]


# ---- timing -----------------------------------------------------------------------------------------

def calibrate(fn, sync, target_s):
    """Number of calls that take about target_s (after a warm-up)."""
    for i in range(2):
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


CLOCK = time.perf_counter   # --clock cpu: time.process_time


def block(fn, sync, n):
    """Seconds per call over n calls."""
    sync()
    t = CLOCK()
    for i in range(n):
        fn(i)
    sync()
    return (CLOCK() - t) / n


def interleaved(contenders, repeats, target_s, settle_s):
    """{name: [seconds per call, one per block]}, blocks alternating ABC.., ..CBA across repeats.
    Between blocks the process sleeps `settle_s` so a spinning thread pool of one contender does not
    steal a core from the next one's block."""
    plan = {name: (fn, sync, calibrate(fn, sync, target_s)) for name, (fn, sync, _) in contenders.items()}
    times = {name: [] for name in plan}
    names = list(plan)
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            fn, sync, n = plan[name]
            time.sleep(settle_s)
            times[name].append(block(fn, sync, n))
    return times


# ---- report -----------------------------------------------------------------------------------------

LABELS = {"numpy": "numpy step (hand-written)", "step": "framework step", "torch": "PyTorch step",
          "fit": "framework Trainer.fit epoch", "loop": "PyTorch loop epoch"}
RATIOS = [("step", "numpy", "framework step / numpy step"),
          ("step", "torch", "framework step / PyTorch step"),
          ("fit", "step", "framework fit / framework step"),
          ("fit", "loop", "framework fit / PyTorch loop"),
          ("loop", "torch", "PyTorch loop / PyTorch step")]


def report(sizes, batch, times, samples, targets):
    """samples/s per contender (median and range over its blocks); each ratio as the median and range
    of the per-repeat ratios, judged against `targets` {(a, b): least ratio}."""
    print(f"\n{'-'.join(map(str, sizes))}, batch {batch}, float32")
    print(f"  {'':32s} {'samples/s':>12s}   {'range over blocks':>27s}")
    rates = {name: [samples[name] / t for t in ts] for name, ts in times.items() if not name.startswith("gemm")}
    for name, r in rates.items():
        print(f"  {LABELS[name]:32s} {statistics.median(r):12,.0f}   {min(r):12,.0f} .. {max(r):12,.0f}")
    print(f"  {'':32s} {'ratio':>12s}   {'range over repeats':>27s}")
    for a, b, label in RATIOS:
        if a in rates and b in rates:
            ratios = [x / y for x, y in zip(rates[a], rates[b])]  # blocks of one repeat ran back to back
            mid, target = statistics.median(ratios), targets.get((a, b))
            goal = f"   target >= {target}x: {'met' if mid >= target else 'MISSED'}" if target else ""
            print(f"  {label:32s} {mid:11.3f}x   {min(ratios):11.3f}x .. {max(ratios):11.3f}x{goal}")


def roofline(sizes, batch, times, library):
    full, executed = flops(sizes, batch)
    gemm = full / statistics.median(times["gemm:step"])
    step = full / statistics.median(times["step"])
    print(f"  GEMM FLOPs per step 6*b*sum(in*out) = {full / 1e6:.1f} MFLOP "
          f"(without dL/dX of layer 1: {executed / 1e6:.1f} MFLOP)")
    print(f"  {library} on the step's GEMMs: {gemm / 1e9:.1f} GFLOP/s; square GEMM: "
          f"{times['gemm:square:rate'] / 1e9:.1f} GFLOP/s")
    print(f"  framework step: {step / 1e9:.1f} GFLOP/s = {step / gemm:.1%} of the step's GEMMs "
          f"({executed / full * step / gemm:.1%} counting executed FLOPs)")


def header(threads):
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs ({platform.processor() or 'unknown processor'})")
    import framework

    print(f"framework: {Path(framework.__file__).parent}")
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:  # a GPU machine may lack it: the CPU's BLAS is not what is measured there
        if threads:
            raise
        print("BLAS: not reported (threadpoolctl not installed)")
        return None
    limit = threadpool_limits(limits=threads, user_api="blas") if threads else None
    for info in threadpool_info():
        if info.get("user_api") == "blas":
            print(f"BLAS: {info.get('internal_api')} {info.get('version')}, kernel {info.get('architecture')}, "
                  f"{info['num_threads']} thread(s) ({Path(info['filepath']).name})")
    forced = os.environ.get("OPENBLAS_CORETYPE")
    if forced:
        print(f"  OPENBLAS_CORETYPE={forced} forces that kernel (L2 size "
              f"{os.environ.get('OPENBLAS_L2_SIZE', 'auto')}); unset it to measure the CPU's native kernel")
    else:
        print("  OPENBLAS_CORETYPE is not set: OpenBLAS chose the kernel from the CPU")
    load = os.getloadavg()[0]
    print(f"load average (1 min) before the run: {load:.2f}"
          + ("  <- other processes are busy: timings are noisy" if load > 0.5 else ""))
    return limit


def torch_or_none(device, threads):
    try:
        import torch
    except ImportError:
        print("PyTorch: not installed - its rows are skipped (pip install torch)")
        return None
    if device == "cuda" and not torch.cuda.is_available():
        print(f"PyTorch {torch.__version__}: CUDA not available - its rows are skipped")
        return None
    if device == "cpu":
        torch.set_num_threads(threads)
        print(f"PyTorch {torch.__version__}: {torch.get_num_threads()} thread(s)")
    else:
        print(f"PyTorch {torch.__version__}: {torch.cuda.get_device_name()}, "
              f"TF32 matmul allowed: {torch.backends.cuda.matmul.allow_tf32}")
    return torch


def contenders(sizes, batch, backend, device, torch, sync):
    """{name: (fn(i), sync, samples per call)} for one shape."""
    model = MLP(sizes, "relu", "identity", backend=backend, dtype="float32", seed=0)
    weights = model.state_dict()
    out = {}
    if device == "cpu" and OPTIMIZER == "sgd":
        out["numpy"] = (numpy_step(weights, sizes, batch), sync, batch)
    out["step"] = (framework_step(model, batch), sync, batch)
    fit_model = MLP(sizes, "relu", "identity", backend=backend, dtype="float32", seed=0)
    n_fit = FIT_BATCHES[device]
    out["fit"] = (framework_fit(fit_model, batch, n_fit), sync, n_fit * batch)
    if torch is not None:
        tsync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        out["torch"] = (torch_step(torch, sizes, batch, weights, device), tsync, batch)
        out["loop"] = (torch_loop(torch, sizes, batch, weights, device, n_fit), tsync, n_fit * batch)
    return out


def run(args, device, cases, backend, xp, matmul, square, sync):
    torch = torch_or_none(device, args.threads)
    for sizes, batch, targets in cases:
        plan = contenders(sizes, batch, backend, device, torch, sync)
        large = sizes == cases[-1][0]
        if large:  # the roofline's GEMMs take turns with the steps, so they see the same machine state
            plan["gemm:step"] = (step_gemms(xp, matmul, sizes, batch), sync, 1)
            plan["gemm:square"] = (square_gemm(xp, matmul, square), sync, 1)
        times = interleaved(plan, args.repeats, args.seconds, args.settle)
        report(sizes, batch, times, {k: v[2] for k, v in plan.items()}, targets if OPTIMIZER == "sgd" else {})
        if large:
            times["gemm:square:rate"] = 2 * square**3 / statistics.median(times["gemm:square"])
            roofline(sizes, batch, times, f"{xp.__name__}.matmul")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--repeats", type=int, default=31, help="timed blocks per contender (interleaved)")
    p.add_argument("--seconds", type=float, default=0.1, help="approximate length of one timed block")
    p.add_argument("--settle", type=float, default=None,
                   help="pause before each block so idle thread pools stop spinning (default: 0.2 s with "
                        "more than one thread, none with one: the blocks of one repeat stay close in time)")
    p.add_argument("--square", type=int, default=1024, help="side of the square CPU GEMM")
    p.add_argument("--square-cuda", type=int, default=8192, help="side of the square GPU GEMM")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for the BLAS and for PyTorch")
    p.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd",
                   help="the update every contender makes (adam: no hand-written NumPy step)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="cpu: this process's CPU time (1 thread, CPU only): robust when other processes "
                        "share the cores, which inflate wall time")
    args = p.parse_args(argv)
    if args.settle is None:
        args.settle = 0.2 if args.threads > 1 or args.device == "cuda" else 0.0
    global CLOCK, OPTIMIZER
    OPTIMIZER = args.optimizer
    if args.clock == "cpu":
        if args.device != "cpu" or args.threads != 1:
            p.error("--clock cpu measures one thread on the CPU: use it with --device cpu --threads 1")
        CLOCK = time.process_time
    print(f"clock: {'process CPU time' if args.clock == 'cpu' else 'wall time'}; optimizer: {OPTIMIZER}")
    backends.create("numpy")  # loads the backend's BLAS libraries first, so the thread limit covers them all
    limit = header(args.threads if args.device == "cpu" else None)  # noqa: F841 - held for the run
    if args.device == "cpu":
        run(args, "cpu", CPU_CASES, "numpy", np, np.matmul, args.square, lambda: None)
        return 0
    try:
        be = backends.create("cupy", dtype="float32")
    except Exception as e:  # noqa: BLE001 - ConfigError says how to fix it
        print(f"skipped: --device cuda needs CuPy and a CUDA GPU: {e}")
        return 0
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(be.device_id)
    print(f"CuPy {cupy.__version__}: {props['name'].decode()}, CUPY_TF32={os.environ.get('CUPY_TF32', '0')}")
    run(args, "cuda", CUDA_CASES, be, cupy, cupy.matmul, args.square_cuda, be.synchronize)
    return 0


if __name__ == "__main__":
    sys.exit(main())
