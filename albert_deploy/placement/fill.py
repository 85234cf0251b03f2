"""GPU placement, part 3: the fill. Once every model is placed, the room left on each GPU goes to
its vLLM models as KV cache (docs/memory-model.md, "Fill")."""

from __future__ import annotations

from collections.abc import Callable

from albert_deploy.placement.memory import CUDA_GRAPH_HEADROOM, MAX_PCT, _on_gpu, _pct
from albert_deploy.placement.search import _Ctx, _Run

_Wants = dict[str, tuple[int, list[int]]]  # model -> (highest percent, weight on each of its GPUs)


def _fill(ctx: _Ctx, run: _Run) -> None:
    """Give the room left on each GPU to its vLLM models: first to the KV caches that were cut, in
    proportion to what each lacks; then to all, in proportion to their KV need; last, what rounding
    left, to the first model that can use it."""
    _share_out(ctx, run, _lacking)
    _share_out(ctx, run, _kv_need)
    for name, slot in run.slots.items():
        if slot.pct is not None:
            _widen(ctx, run, name, MAX_PCT, [run.free[p] for p in slot.positions])


def _share_out(ctx: _Ctx, run: _Run, wants: Callable[[_Ctx, _Run], _Wants]) -> None:
    """Split each GPU's free memory by the wants' weights, pass after pass while a share still buys a
    whole percent. Shares are all taken from the free memory before any is used: no over-commit."""
    while want := wants(ctx, run):
        total = [0] * len(ctx.gpus)
        for name, (_, weights) in want.items():
            for p, w in zip(run.slots[name].positions, weights, strict=True):
                total[p] += w
        shares = {
            name: [run.free[p] * w // total[p] for p, w in zip(run.slots[name].positions, weights, strict=True)]
            for name, (_, weights) in want.items()
        }
        if not any([_widen(ctx, run, name, top, shares[name]) for name, (top, _) in want.items()]):
            return


def _lacking(ctx: _Ctx, run: _Run) -> _Wants:
    """Cut KV caches, each up to the percent it was sized for (or the cap), weighted by the bytes it lacks."""
    wants = {}
    for name, slot in run.slots.items():
        need = ctx.by_name[name]
        if slot.pct is None or not need.elastic:
            continue
        totals = [ctx.gpus[p].total for p in slot.positions]
        top = min(MAX_PCT, _pct(need, need.kv_target, len(totals), tuple(totals)))
        if slot.pct < top:
            wants[name] = (top, [_on_gpu(need, top, t) - b for t, b in zip(totals, slot.bytes_on, strict=True)])
    return wants


def _kv_need(ctx: _Ctx, run: _Run) -> _Wants:
    """Every vLLM model below the cap, weighted by the KV cache it was sized for, per GPU."""
    return {
        name: (MAX_PCT, [ctx.by_name[name].kv_target // len(slot.positions)] * len(slot.positions))
        for name, slot in run.slots.items()
        if slot.pct is not None and slot.pct < MAX_PCT
    }


def _widen(ctx: _Ctx, run: _Run, name: str, top: int, room: list[int]) -> bool:
    """Raise a vLLM model's utilization as far as `room` (bytes on each of its GPUs) and `top` allow.
    One utilization for all its GPUs, so the tightest one decides."""
    slot = run.slots[name]
    assert slot.pct is not None
    gpus = [ctx.gpus[p] for p in slot.positions]
    inner = [size - CUDA_GRAPH_HEADROOM + extra for size, extra in zip(slot.bytes_on, room, strict=True)]
    pct = min(top, *(b * 100 // g.total for b, g in zip(inner, gpus, strict=True)))
    if pct <= slot.pct:
        return False
    sizes = tuple(_on_gpu(ctx.by_name[name], pct, g.total) for g in gpus)
    for g, old, new in zip(gpus, slot.bytes_on, sizes, strict=True):
        run.free[g.pos] -= new - old
    slot.pct, slot.bytes_on = pct, sizes
    return True
