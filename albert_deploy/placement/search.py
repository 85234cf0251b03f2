"""GPU placement, part 2: the packing search.

One attempt (:class:`_Run`) puts every model, pinned ones first, then the rest largest first, at its
target or floor KV cache, with best fit (`pack`) or worst fit (`spread`); a vLLM model that fits no
single GPU is split over the fewest GPUs of one size that hold it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from albert_deploy.errors import PlacementError
from albert_deploy.placement.memory import TP_OVERHEAD, _Gpu, _Need, _shape, _split_options

Strategy = Literal["pack", "spread"]


@dataclass
class _Slot:
    """A model's place during planning."""

    positions: tuple[int, ...]
    pct: int | None  # vLLM --gpu-memory-utilization, in whole percent
    bytes_on: tuple[int, ...]  # budget on each of its GPUs
    split: bool = False  # tensor parallelism chosen by the planner


@dataclass
class _Ctx:
    gpus: list[_Gpu]
    groups: list[list[int]]  # positions of GPUs of equal total memory, largest first
    pins: dict[str, tuple[int, ...]]
    by_name: dict[str, _Need]

    @property
    def largest(self) -> _Gpu:
        return self.gpus[self.groups[0][0]]


@dataclass
class _Run:
    """One attempt: every model at its target (or floor) KV cache, with one strategy."""

    level: Literal["target", "floor"]
    strategy: Strategy
    free: list[int]
    models_on: list[int]
    slots: dict[str, _Slot] = field(default_factory=dict)
    spilled: list[str] = field(default_factory=list)
    failure: _Need | None = None

    def kv(self, need: _Need) -> int:
        return need.kv_target if self.level == "target" else need.kv_floor

    def take(self, name: str, slot: _Slot) -> None:
        self.slots[name] = slot
        for p, size in zip(slot.positions, slot.bytes_on, strict=True):
            self.free[p] -= size
            self.models_on[p] += 1

    def key(self, p: int, size: int) -> tuple[int, ...]:
        left = self.free[p] - size
        if self.strategy == "pack":
            return (0 if self.models_on[p] else 1, left, p)  # best fit, used GPUs first
        return (-left, p)  # worst fit: most room left


def _resolve_pins(need: _Need, gpus: list[_Gpu]) -> tuple[int, ...]:
    keys: dict[str, int] = {}
    for g in gpus:
        keys[str(g.index)] = g.pos
        if g.uuid:
            keys[g.uuid.lower()] = g.pos
    assert isinstance(need.request, list)
    positions = []
    for pin in need.request:
        if str(pin).lower() not in keys:
            known = ", ".join(str(g.index) + (f" ({g.uuid})" if g.uuid else "") for g in gpus) or "none"
            raise PlacementError(f"models.{need.pos}.gpus: GPU {pin} is not in the profile's `gpus` (known: {known})")
        positions.append(keys[str(pin).lower()])
    if len(set(positions)) != len(positions):
        raise PlacementError(f"models.{need.pos}.gpus: a GPU is listed twice (by index and by UUID): list it once")
    return tuple(positions)


def _groups(gpus: list[_Gpu]) -> list[list[int]]:
    by_total: dict[int, list[int]] = {}
    for g in gpus:
        by_total.setdefault(g.total, []).append(g.pos)
    return [by_total[t] for t in sorted(by_total, reverse=True)]


def _split_for(ctx: _Ctx, need: _Need, kv: int) -> int | None:
    """Fewest GPUs the model fits on, empty; None when it fits nowhere."""
    for k in _split_options(need, len(ctx.gpus)):
        for group in ctx.groups:
            g = ctx.gpus[group[0]]
            if len(group) >= k and max(_shape(need, kv, k, (g.total,))[1]) <= g.usable:
                return k
    return None


def _kv_of(ctx: _Ctx, need: _Need, slot: _Slot) -> int:
    if slot.pct is None:
        return 0
    assert need.weights is not None
    k = len(slot.positions)
    inner = min(slot.pct * ctx.gpus[p].total // 100 for p in slot.positions)
    return max(0, (inner - need.runtime - (TP_OVERHEAD if k > 1 else 0)) * k - need.weights)


# --- Runs -----------------------------------------------------------------------------------------


def _run(ctx: _Ctx, needs: list[_Need], level: Literal["target", "floor"], strategy: Strategy) -> _Run:
    run = _Run(level, strategy, [g.usable for g in ctx.gpus], [0] * len(ctx.gpus))
    for need in (x for x in needs if x.name in ctx.pins):
        if not _place_pinned(ctx, run, need):
            run.failure = need
            return run
    unpinned = [x for x in needs if x.name not in ctx.pins]
    splits = {x.name: _split_for(ctx, x, run.kv(x)) for x in unpinned}
    for need in sorted(unpinned, key=lambda x: _demand_key(ctx, run, x, splits[x.name])):
        if _place_free(ctx, run, need, splits[need.name]):
            continue
        if not need.optional:
            run.failure = need
            return run
        run.spilled.append(need.name)
    return run


def _demand_key(ctx: _Ctx, run: _Run, need: _Need, k: int | None) -> tuple[bool, int, str]:
    """Required models first, largest first (first-fit decreasing); the name breaks ties so that plans
    are deterministic."""
    k = k or 1
    size = max(_shape(need, run.kv(need), k, (ctx.largest.total,))[1]) if ctx.groups else 0
    return need.optional, -size * k, need.name


def _place_pinned(ctx: _Ctx, run: _Run, need: _Need) -> bool:
    positions = ctx.pins[need.name]
    pct, sizes = _shape(need, run.kv(need), len(positions), tuple(ctx.gpus[p].total for p in positions))
    if any(size > run.free[p] for p, size in zip(positions, sizes, strict=True)):
        return False
    run.take(need.name, _Slot(positions, pct, sizes))
    return True


def _place_free(ctx: _Ctx, run: _Run, need: _Need, k: int | None) -> bool:
    if k is None:
        return False
    slot = _choose_one(ctx, run, need) if k == 1 else _choose_many(ctx, run, need, k)
    if slot is None:
        return False
    run.take(need.name, slot)
    return True


def _choose_one(ctx: _Ctx, run: _Run, need: _Need) -> _Slot | None:
    shapes = {t: _shape(need, run.kv(need), 1, (t,)) for t in {g.total for g in ctx.gpus}}
    sizes = [shapes[g.total][1][0] for g in ctx.gpus]
    fits = [(run.key(p, size), p) for p, size in enumerate(sizes) if size <= run.free[p]]
    if not fits:
        return None
    p = min(fits)[1]
    return _Slot((p,), *shapes[ctx.gpus[p].total])


def _choose_many(ctx: _Ctx, run: _Run, need: _Need, k: int) -> _Slot | None:
    """k GPUs of one size (vLLM takes one utilization for all of them), largest GPUs first."""
    for group in ctx.groups:
        pct, sizes = _shape(need, run.kv(need), k, (ctx.gpus[group[0]].total,))
        fits = sorted((run.key(p, sizes[0]), p) for p in group if run.free[p] >= sizes[0])
        if len(fits) >= k:
            return _Slot(tuple(sorted(p for _, p in fits[:k])), pct, sizes * k, split=need.count is None)
    return None
