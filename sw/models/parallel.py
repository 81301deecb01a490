"""Data-parallel batch shards on a thread pool, with a result independent of the thread count.

The delay model's hot path is many medium and small ops in sequence (per-step
LIF updates, per-level gather-sums): intra-op OpenMP threads barely help them
and, on a shared machine, spin on each other. Instead, :func:`sharded` splits
the batch into a FIXED number of shards and runs the whole network (forward,
and in backward the whole per-shard BPTT) of each shard on its own worker
thread, every worker with ONE intra-op thread. Torch ops release the GIL while
they compute, so two workers keep two cores busy.

It is one ``torch.autograd.Function``: the forward runs ``fn(shard, weights)``
per shard with grad enabled on detached copies of ``weights``; the backward
runs ``torch.autograd.grad`` of each shard's graph on the workers and adds the
shard gradients in shard order. Every shard is computed by one thread with one
intra-op thread whatever the number of workers, and the sum order is fixed, so
the bits depend on the number of shards, never on the number of threads.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import torch

_POOLS: dict[int, ThreadPoolExecutor] = {}
_LOCK = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    with _LOCK:
        if workers not in _POOLS:
            _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="spikeline-shard")
        return _POOLS[workers]


def _one_thread(fn, *args):
    # OpenMP's thread count is per calling thread: this leaves the caller's own setting alone
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    return fn(*args)


def run_shards(fn, items: list[tuple], workers: int) -> list:
    """``[fn(*item) for item in items]``, on ``workers`` threads (one intra-op thread each); in order.
    With ``workers <= 1`` it runs on the calling thread, which must then itself use one intra-op thread
    for bit-identical results (the trainer does)."""
    if workers <= 1 or len(items) <= 1:
        return [fn(*it) for it in items]
    ex = _pool(min(workers, len(items)))
    futs = [ex.submit(_one_thread, fn, *it) for it in items]
    return [f.result() for f in futs]


class _Sharded(torch.autograd.Function):
    @staticmethod
    def forward(ctx, fn, x, shards, workers, *weights):
        xs = x.tensor_split(shards)

        def fwd(xi):
            with torch.enable_grad():
                leaves = [w.detach().requires_grad_(w.requires_grad) for w in weights]
                return leaves, tuple(fn(xi, leaves))

        res = run_shards(fwd, [(xi,) for xi in xs], workers)
        ctx.res, ctx.workers = res, workers
        ctx.set_materialize_grads(False)
        n_out = len(res[0][1])
        return tuple(torch.cat([r[1][k].detach() for r in res]) for k in range(n_out))

    @staticmethod
    def backward(ctx, *gouts):
        res = ctx.res
        sizes = [r[1][0].shape[0] for r in res]
        gs = [g.split(sizes) if g is not None else [None] * len(res) for g in gouts]

        def bwd(k):
            leaves, outs = res[k]
            pairs = [(o, g[k]) for o, g in zip(outs, gs) if g[k] is not None and o.requires_grad]
            want = [j for j, w in enumerate(leaves) if w.requires_grad]
            out = [None] * len(leaves)
            if pairs and want:
                got = torch.autograd.grad([o for o, _ in pairs], [leaves[j] for j in want], [g for _, g in pairs],
                                          allow_unused=True)
                for j, gj in zip(want, got):
                    out[j] = gj
            return out

        per = run_shards(bwd, [(k,) for k in range(len(res))], ctx.workers)
        ctx.res = None  # the shard graphs are spent
        total = []
        for j in range(len(per[0])):
            acc = None
            for p in per:  # shard order: the sum's rounding does not depend on which thread finished first
                if p[j] is not None:
                    acc = p[j] if acc is None else acc + p[j]
            total.append(acc)
        return (None, None, None, None, *total)


def sharded(fn, x: torch.Tensor, weights: list[torch.Tensor], shards: int, workers: int) -> tuple:
    """``fn(x, weights)`` (a tuple of tensors whose first dim is the batch) computed per batch shard:
    ``shards`` fixed pieces of ``x`` (``tensor_split``), ``workers`` threads. Gradients reach ``weights``
    only (``fn`` must not use other tensors that need a gradient)."""
    shards = max(1, min(int(shards), x.shape[0]))
    if shards == 1:
        return tuple(fn(x, weights))
    if not torch.is_grad_enabled() or not any(w.requires_grad for w in weights):
        def fwd(xi):
            with torch.no_grad():  # grad mode is per thread: set it on the worker
                return tuple(fn(xi, weights))

        res = run_shards(fwd, [(xi,) for xi in x.tensor_split(shards)], workers)
        return tuple(torch.cat([r[k] for r in res]) for k in range(len(res[0])))
    return _Sharded.apply(fn, x, shards, workers, *weights)


__all__ = ["run_shards", "sharded"]
