"""GPU placement: which model runs on which GPU, and with how much memory.

Pure planning: a Profile in, a Placement out. Only :func:`detect_gpus` touches the host, and it
imports nvidia-ml-py lazily so that importing this module stays fast. The memory model and its
constants are explained in docs/memory-model.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from . import catalog
from .errors import PlacementError
from .profile import Gpu, GpuPool, HostedModel, Profile
from .spec import GpuAssignment

GIB = 2**30
MIB = 2**20

# --- Memory model (docs/memory-model.md) ------------------------------------------------------

KV_DTYPE_BYTES = 2  # vLLM keeps the KV cache in the model's dtype (bf16/fp16)
DEFAULT_MAX_MODEL_LEN = 8192  # context passed to vLLM when the profile gives none (catalog models)
DEFAULT_NUM_SEQS = 8  # concurrent sequences the KV cache is sized for when the profile gives none
CUDA_GRAPH_HEADROOM = GIB  # vLLM 0.11 captures CUDA graphs outside --gpu-memory-utilization
TP_OVERHEAD = GIB // 2  # NCCL buffers on each GPU of a split model
UNKNOWN_KV_FRACTION = 0.25  # KV allowance for a vLLM model whose architecture is not in the catalog
UNKNOWN_KV_MIN = GIB
DEFAULT_RUNTIME_GIB = {"vllm": 1.0, "tei": 1.5, "whisper": 2.5}  # models outside the catalog
GPU_RESERVE_MIN = 512 * MIB  # the driver keeps some memory that no process can allocate
GPU_RESERVE_FRACTION = 0.01
MAX_PCT = 90  # the fill stops at vLLM's own default share (0.9): slack for what the estimates miss

Strategy = Literal["pack", "spread"]
Request = str | int | list[int | str]


# --- Public results ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelPlacement:
    model: str  # profile model name (HostedModel.name)
    gpu: GpuAssignment | None  # None: CPU
    memory_bytes: int  # planned budget on EACH of its GPUs (0 on CPU or without inventory)
    gpu_memory_utilization: float | None  # vLLM, when the GPU's total is known
    tensor_parallel_size: int
    compute_capability: tuple[int, int] | None
    max_model_len: int | None  # vLLM: the context length to pass
    kv_cache_bytes: int = 0  # vLLM: KV cache the budget leaves (all GPUs together)
    notes: tuple[str, ...] = ()  # why the plan differs from what the profile asked, in words
    server: str | None = None


@dataclass(frozen=True)
class GpuUsage:
    device_id: str
    index: int
    name: str | None
    total_bytes: int
    used_bytes: int  # sum of the models' budgets
    models: tuple[tuple[str, int], ...]  # (model name, bytes), in profile order
    reserved_bytes: int = 0  # kept back for the driver

    @property
    def free_bytes(self) -> int:
        return self.total_bytes - self.reserved_bytes - self.used_bytes


@dataclass(frozen=True)
class Placement:
    models: dict[str, ModelPlacement]  # every hosted model, in profile order
    gpus: tuple[GpuUsage, ...]  # empty without an inventory


# --- Inventory ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Gpu:
    pos: int  # position in the inventory
    index: int
    device_id: str
    uuid: str | None
    name: str | None
    total: int
    cc: tuple[int, int] | None

    @property
    def reserve(self) -> int:
        return max(GPU_RESERVE_MIN, int(self.total * GPU_RESERVE_FRACTION))

    @property
    def usable(self) -> int:
        return self.total - self.reserve

    @property
    def label(self) -> str:
        return f"GPU {self.device_id}" + (f" ({self.name})" if self.name else "")


_NO_DRIVER = "no NVIDIA driver found ({}): declare `gpus:` in the profile or use a CPU profile"


def detect_gpus() -> list[Gpu]:
    """The host's GPUs as NVML reports them."""
    try:
        import pynvml
    except ImportError:
        raise PlacementError(_NO_DRIVER.format("nvidia-ml-py is not installed")) from None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as err:
        raise PlacementError(_NO_DRIVER.format(f"NVML: {err}")) from None
    try:
        gpus = [_read_gpu(pynvml, i) for i in range(pynvml.nvmlDeviceGetCount())]
    except pynvml.NVMLError as err:
        raise PlacementError(_NO_DRIVER.format(f"NVML: {err}")) from None
    finally:
        pynvml.nvmlShutdown()
    if not gpus:
        raise PlacementError(_NO_DRIVER.format("the driver reports no GPU"))
    return gpus


def _read_gpu(nvml: Any, index: int) -> Gpu:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
    uuid = _text(nvml.nvmlDeviceGetUUID(handle))
    return Gpu(
        index=index,
        uuid=uuid if uuid.startswith("GPU-") else None,
        memory=int(nvml.nvmlDeviceGetMemoryInfo(handle).total),
        name=_text(nvml.nvmlDeviceGetName(handle)),
        compute_capability=f"{major}.{minor}",
    )


def _text(value: str | bytes) -> str:
    # Older nvidia-ml-py releases return bytes.
    return value.decode() if isinstance(value, bytes) else value


def _inventory(profile: Profile) -> list[_Gpu] | None:
    spec = profile.gpus
    if spec is None:
        return None
    if spec == "auto":
        spec = detect_gpus()
    if isinstance(spec, GpuPool):
        cc = _capability(spec.compute_capability, spec.name)
        return [_Gpu(i, i, str(i), None, spec.name, spec.memory, cc) for i in range(spec.count)]
    gpus = [
        _Gpu(pos, g.index, g.uuid or str(g.index), g.uuid, g.name, g.memory, _capability(g.compute_capability, g.name))
        for pos, g in enumerate(spec)
    ]
    _check_unique(gpus)
    return gpus


def _capability(text: str | None, name: str | None) -> tuple[int, int] | None:
    if text:
        major, minor = text.split(".")
        return int(major), int(minor)
    known = catalog.gpu_by_name(name) if name else None
    return known.compute_capability if known else None


def _check_unique(gpus: list[_Gpu]) -> None:
    seen: set[str] = set()
    for g in gpus:
        for key in (str(g.index), (g.uuid or "").lower()):
            if key in seen:
                raise PlacementError(f"gpus: GPU {key} is listed twice: list each GPU once")
            if key:
                seen.add(key)


# --- What each model needs ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Need:
    pos: int  # index in profile.models, for error locations
    name: str
    server: str
    request: Request
    weights: int | None  # None: unknown (outside the catalog, no `memory`)
    runtime: int
    kv_floor: int  # vLLM: one full-length sequence (vLLM refuses to start with less)
    kv_target: int  # vLLM: max_num_seqs (or DEFAULT_NUM_SEQS) sequences
    kv_per_token: int
    seq_tokens: int  # tokens one sequence keeps (capped by the sliding window)
    max_model_len: int | None
    heads: int  # attention heads; 0 when unknown

    @property
    def vllm(self) -> bool:
        return self.server == "vllm"

    @property
    def elastic(self) -> bool:
        return self.kv_target > self.kv_floor

    @property
    def optional(self) -> bool:
        """On a GPU when there is room, else on CPU (TEI left to 'auto')."""
        return self.request == "auto" and not catalog.SERVERS[self.server].needs_gpu

    @property
    def on_cpu(self) -> bool:
        return self.request in ("cpu", 0)

    @property
    def count(self) -> int | None:
        """GPUs the profile asks for; None when placement chooses."""
        if isinstance(self.request, list):
            return len(self.request)
        return self.request if isinstance(self.request, int) else None


class _Kv(NamedTuple):
    floor: int
    target: int
    per_token: int
    seq_tokens: int
    max_model_len: int | None
    heads: int


_NO_KV = _Kv(0, 0, 0, 0, None, 0)


def _need(pos: int, model: HostedModel) -> _Need:
    server = model.server or ""
    known = model.known
    weights = model.memory if model.memory is not None else _weights(known, server)
    runtime = int((known.runtime_gib if known else DEFAULT_RUNTIME_GIB[server]) * GIB)
    kv = _kv(pos, model, known, weights) if server == "vllm" else _NO_KV
    need = _Need(pos, model.name or "", server, model.gpus, weights, runtime, *kv)
    _check_split(need)
    return need


def _weights(known: catalog.KnownModel | None, server: str) -> int | None:
    if known is None:
        return None
    per_param = catalog.SERVERS[server].bytes_per_param.get(known.dtype, 2)
    return int(known.params_b * 1e9 * per_param)


def _kv(pos: int, model: HostedModel, known: catalog.KnownModel | None, weights: int | None) -> _Kv:
    max_len = _max_model_len(pos, model, known)
    if known is None or not known.layers or max_len is None:
        allowance = max(UNKNOWN_KV_MIN, int((weights or 0) * UNKNOWN_KV_FRACTION))
        return _Kv(allowance, allowance, 0, 0, max_len, 0)
    per_token = 2 * known.layers * known.kv_heads * known.head_dim * KV_DTYPE_BYTES
    seq = min(max_len, known.sliding_window) if known.sliding_window else max_len
    # Never below one whole max_model_len sequence: vLLM checks that at start-up.
    target = per_token * max(max_len, (model.max_num_seqs or DEFAULT_NUM_SEQS) * seq)
    floor = target if model.max_num_seqs else per_token * max_len
    return _Kv(floor, target, per_token, seq, max_len, known.attention_heads)


def _max_model_len(pos: int, model: HostedModel, known: catalog.KnownModel | None) -> int | None:
    limit = known.max_positions if known else 0
    if model.max_model_len is not None:
        if limit and model.max_model_len > limit:
            raise PlacementError(
                f"models.{pos}.max_model_len: {model.max_model_len} is beyond {model.name}'s {limit} positions: "
                f"use at most {limit}"
            )
        return model.max_model_len
    if known is None or not known.layers:
        return None  # vLLM reads it from the model's config
    return min(limit or DEFAULT_MAX_MODEL_LEN, DEFAULT_MAX_MODEL_LEN)


def _check_split(need: _Need) -> None:
    count = need.count or 1
    if count > 1 and need.heads and need.heads % count:
        options = ", ".join(str(k) for k in range(1, need.heads + 1) if need.heads % k == 0 and k <= 16)
        raise PlacementError(
            f"models.{need.pos}.gpus: vLLM splits {need.name} by its {need.heads} attention heads, "
            f"so {count} GPUs cannot work: use {options}"
        )


def _check_one_gpu(need: _Need) -> None:
    if not need.vllm and (need.count or 1) > 1:
        raise PlacementError(f"models.{need.pos}.gpus: {need.server} runs on one GPU: give {need.name} a single GPU")


# --- Placement ------------------------------------------------------------------------------------


def place(profile: Profile) -> Placement:
    """Where each hosted model runs; raises PlacementError with numbers and remedies."""
    needs = [_need(i, m) for i, m in enumerate(profile.models) if isinstance(m, HostedModel)]
    for need in needs:
        _check_one_gpu(need)
    gpus = _inventory(profile)
    if gpus is None:
        return Placement(models={n.name: _without_inventory(n) for n in needs}, gpus=())
    return _place_on(gpus, needs, profile)


def _cpu(need: _Need, *notes: str) -> ModelPlacement:
    return ModelPlacement(need.name, None, 0, None, 1, None, need.max_model_len, notes=notes, server=need.server)


def _without_inventory(need: _Need) -> ModelPlacement:
    request = need.request
    if need.on_cpu:
        return _cpu(need)
    if request == "auto":
        if need.optional:
            return _cpu(need, "no GPU inventory in the profile: runs on CPU")
        raise PlacementError(
            f"models.{need.pos}.gpus: {need.name} needs a GPU and the profile declares none: "
            "add `gpus:` (e.g. `gpus: {count: 1, memory: 24GB}`) or pin the model (`gpus: [0]`)"
        )
    if isinstance(request, list):
        gpu = GpuAssignment(device_ids=tuple(str(p) for p in request))
    else:
        gpu = GpuAssignment(count=int(request))
    split = (need.count or 1) if need.vllm else 1
    return ModelPlacement(need.name, gpu, 0, None, split, None, need.max_model_len, server=need.server)


@dataclass
class _Slot:
    """A model's place during planning."""

    positions: tuple[int, ...]
    pct: int | None  # vLLM --gpu-memory-utilization, in whole percent
    bytes_on: tuple[int, ...]  # budget on each of its GPUs
    split: bool = False  # tensor parallelism chosen by the planner


_Wants = dict[str, tuple[int, list[int]]]  # model -> (highest percent, weight on each of its GPUs)


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


def _place_on(gpus: list[_Gpu], needs: list[_Need], profile: Profile) -> Placement:
    on_gpu = [n for n in needs if not n.on_cpu]
    for need in on_gpu:
        _require_weights(need)
    pins = {n.name: _resolve_pins(n, gpus) for n in on_gpu if isinstance(n.request, list)}
    ctx = _Ctx(gpus, _groups(gpus), pins, {n.name: n for n in needs})
    if not profile.share_gpus:
        _check_pins_apart(ctx)
    _check_alone(ctx, on_gpu)
    run = _best_run(ctx, on_gpu, profile.placement)
    return _assemble(ctx, needs, run)


def _require_weights(need: _Need) -> None:
    if need.weights is None:
        raise PlacementError(
            f"models.{need.pos}.memory: {need.name} is not in the catalog, so its size is unknown: "
            "give its weights' size as `memory:` (e.g. `memory: 16GB` for 8B parameters in bf16)"
        )


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


def _check_pins_apart(ctx: _Ctx) -> None:
    """The profile compares pins as written; one GPU named by index and by UUID is caught here."""
    owners: dict[int, str] = {}
    for name, positions in ctx.pins.items():
        for p in positions:
            if p in owners:
                g = ctx.gpus[p]
                raise PlacementError(
                    f"models.{ctx.by_name[name].pos}.gpus: GPU {g.index} ({g.device_id}) is already given to "
                    f"'{owners[p]}': pin another GPU, or set `share_gpus: true` to let models share it"
                )
            owners[p] = name


def _groups(gpus: list[_Gpu]) -> list[list[int]]:
    by_total: dict[int, list[int]] = {}
    for g in gpus:
        by_total.setdefault(g.total, []).append(g.pos)
    return [by_total[t] for t in sorted(by_total, reverse=True)]


# --- Sizes ----------------------------------------------------------------------------------------


def _pct(need: _Need, kv: int, k: int, totals: tuple[int, ...]) -> int:
    """Smallest whole percent of each GPU covering weights, KV cache and runtime."""
    assert need.weights is not None
    inner = -(-(need.weights + kv) // k) + need.runtime + (TP_OVERHEAD if k > 1 else 0)
    return max(-(-inner * 100 // t) if t > 0 else 10**6 for t in totals)


def _on_gpu(need: _Need, pct: int | None, total: int) -> int:
    """Budget on one GPU: vLLM's share rounded up to the byte, plus its CUDA graphs."""
    if pct is None:
        assert need.weights is not None
        return need.weights + need.runtime
    return -(-pct * total // 100) + CUDA_GRAPH_HEADROOM


def _shape(need: _Need, kv: int, k: int, totals: tuple[int, ...]) -> tuple[int | None, tuple[int, ...]]:
    pct = _pct(need, kv, k, totals) if need.vllm else None
    return pct, tuple(_on_gpu(need, pct, t) for t in totals)


def _split_options(need: _Need, gpu_count: int) -> list[int]:
    if not need.vllm:
        return [1]
    if need.count is not None:
        return [need.count]
    options, k = [1], 2
    while need.heads and k <= gpu_count and need.heads % k == 0:
        options.append(k)
        k *= 2
    return options


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


# --- Runs -------------------------------------------------------------------------------------------


def _best_run(ctx: _Ctx, needs: list[_Need], mode: Strategy) -> _Run:
    """Every model at its full KV cache if it fits; else the fewest TEI models moved to CPU, then the
    smallest KV cuts, with KV caches cut toward one sequence. Each plan is filled before comparing."""
    runs = [_run(ctx, needs, "target", mode)]
    if runs[0].failure is not None or runs[0].spilled:
        other: Strategy = "spread" if mode == "pack" else "pack"
        runs += [_run(ctx, needs, "floor", s) for s in (mode, other)]
    done = [r for r in runs if r.failure is None]
    if not done:
        raise _packing_error(ctx, needs, runs[1])
    for run in done:
        _fill(ctx, run)
    return min(done, key=lambda r: (len(r.spilled), -_kv_kept(ctx, r)))


def _kv_kept(ctx: _Ctx, run: _Run) -> int:
    """KV cache up to what each model was sized for: the fill's extra on one model does not make up
    for a cut on another."""
    return sum(min(_kv_of(ctx, ctx.by_name[n], slot), ctx.by_name[n].kv_target) for n, slot in run.slots.items())


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


# --- Fill ------------------------------------------------------------------------------------------


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


# --- Errors ---------------------------------------------------------------------------------------


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB"


def _check_alone(ctx: _Ctx, needs: list[_Need]) -> None:
    """A model that fits on no GPU even alone gets its own message, before any packing."""
    widest = max(map(len, ctx.groups), default=0)
    for need in needs:
        if need.count and need.count > len(ctx.gpus):
            raise PlacementError(
                f"models.{need.pos}.gpus: {need.name} asks for {need.count} GPUs, "
                f"the profile's `gpus` has {len(ctx.gpus)}"
            )
        if need.name in ctx.pins:
            _check_pinned_alone(ctx, need)
        elif need.count and need.count > widest:
            raise PlacementError(
                f"models.{need.pos}.gpus: {need.name} asks for {need.count} GPUs of one size (vLLM gives each the "
                f"same share), the profile's `gpus` has at most {widest} of one size: pin the GPUs instead "
                "(e.g. `gpus: [0, 1]`) or ask for fewer"
            )
        elif not need.optional and _split_for(ctx, need, need.kv_floor) is None:
            raise _too_big_error(ctx, need)


def _check_pinned_alone(ctx: _Ctx, need: _Need) -> None:
    positions = ctx.pins[need.name]
    _, sizes = _shape(need, need.kv_floor, len(positions), tuple(ctx.gpus[p].total for p in positions))
    for p, size in zip(positions, sizes, strict=True):
        g = ctx.gpus[p]
        if size > g.usable:
            raise PlacementError(
                f"models.{need.pos}.gpus: {need.name} needs {_gb(size)} on {g.label}, which has {_gb(g.total)} "
                f"({_gb(g.usable)} usable): {_remedies(ctx, need, g)}"
            )


def _too_big_error(ctx: _Ctx, need: _Need) -> PlacementError:
    if not ctx.gpus:
        return PlacementError(f"{need.name} needs a GPU and the profile's `gpus` lists none: declare the host's GPUs")
    largest = ctx.largest
    size = max(_shape(need, need.kv_floor, need.count or 1, (largest.total,))[1])
    detail = f" ({_breakdown(need)})" if need.vllm else ""
    many = f"{need.count} × " if (need.count or 1) > 1 else ""
    return PlacementError(
        f"{need.name} needs {many}{_gb(size)}{detail}, the largest GPU has {_gb(largest.total)} "
        f"({_gb(largest.usable)} usable): {_remedies(ctx, need, largest)}"
    )


def _breakdown(need: _Need) -> str:
    assert need.weights is not None
    kv = f"KV cache {_gb(need.kv_floor)}"
    kv += f" for one {need.max_model_len}-token sequence" if need.kv_per_token else " (a quarter of the weights)"
    return f"weights {_gb(need.weights)}, {kv}, runtime and CUDA graphs {_gb(need.runtime + CUDA_GRAPH_HEADROOM)}"


def _remedies(ctx: _Ctx, need: _Need, gpu: _Gpu) -> str:
    if need.server == "tei":
        return "give it `gpus: cpu`, a larger GPU, or use an external endpoint"
    if not need.vllm:
        return "use a larger GPU or an external endpoint"
    options = []
    shorter = _fitting_len(need, gpu)
    if shorter:
        options.append(f"lower max_model_len (to {shorter} or less)")
    k = _split_that_fits(need, gpu)
    if k:
        options.append(f"add GPUs (it fits split over {k} × {_gb(gpu.total)})")
    elif not need.heads and (need.count or 1) == 1:
        options.append("split it over 2 GPUs yourself (`gpus: 2`, if its attention heads divide by 2)")
    else:
        options.append("add a larger GPU")
    return ", ".join(options) + ", or use an external endpoint"


def _fitting_len(need: _Need, gpu: _Gpu) -> int | None:
    """Largest max_model_len (in 1024s) whose single sequence fits the GPU; None if none or no help."""
    if not need.kv_per_token or need.weights is None or need.max_model_len is None:
        return None
    inner = (gpu.usable - CUDA_GRAPH_HEADROOM) * 100 // gpu.total * gpu.total // 100
    tokens = (inner - need.runtime - need.weights) // need.kv_per_token // 1024 * 1024
    return tokens if 1024 <= tokens < need.max_model_len else None


def _split_that_fits(need: _Need, gpu: _Gpu) -> int | None:
    k = 2
    while need.heads and need.heads % k == 0 and k <= 64:
        if max(_shape(need, need.kv_floor, k, (gpu.total,))[1]) <= gpu.usable:
            return k
        k *= 2
    return None


def _packing_error(ctx: _Ctx, needs: list[_Need], run: _Run) -> PlacementError:
    need = run.failure
    assert need is not None
    if need.name in ctx.pins:
        return _pinned_error(ctx, run, need)
    k = _split_for(ctx, need, need.kv_floor) or 1
    size = max(_shape(need, need.kv_floor, k, (ctx.largest.total,))[1])
    where = f"no {k} GPUs of one size have that much left each" if k > 1 else "no GPU has that much left"
    room = max(run.free, default=0)
    wanted = sum(_least_size(ctx, n) for n in needs if not n.optional)
    usable = sum(g.usable for g in ctx.gpus)
    return PlacementError(
        f"{need.name} needs {_gb(size)}{f' on each of {k} GPUs' if k > 1 else ''} but {where} "
        f"(at most {_gb(room)} on one); the GPU models need {_gb(wanted)} at the least, the GPUs offer {_gb(usable)}:\n"
        "lower max_model_len, put embedding models on CPU (`gpus: cpu`), use external endpoints, or add a GPU"
    )


def _least_size(ctx: _Ctx, need: _Need) -> int:
    k = need.count or _split_for(ctx, need, need.kv_floor) or 1
    if need.name in ctx.pins:
        return sum(_shape(need, need.kv_floor, k, tuple(ctx.gpus[p].total for p in ctx.pins[need.name]))[1])
    return k * max(_shape(need, need.kv_floor, k, (ctx.largest.total,))[1])


def _pinned_error(ctx: _Ctx, run: _Run, need: _Need) -> PlacementError:
    positions = ctx.pins[need.name]
    _, sizes = _shape(need, need.kv_floor, len(positions), tuple(ctx.gpus[p].total for p in positions))
    p, size = next((p, s) for p, s in zip(positions, sizes, strict=True) if s > run.free[p])
    others = [name for name, slot in run.slots.items() if p in slot.positions]
    return PlacementError(
        f"models.{need.pos}.gpus: {need.name} needs {_gb(size)} on {ctx.gpus[p].label}, which has {_gb(run.free[p])} "
        f"left after {', '.join(others)}: pin it to another GPU, lower max_model_len, or move a model off that GPU"
    )


# --- Results --------------------------------------------------------------------------------------


def _assemble(ctx: _Ctx, needs: list[_Need], run: _Run) -> Placement:
    models = {}
    for need in needs:
        slot = run.slots.get(need.name)
        if slot is not None:
            models[need.name] = _on_gpus(ctx, need, slot)
        elif need.name in run.spilled:
            models[need.name] = _cpu(need, "no room left on the GPUs: runs on CPU (`gpus: 1` requires a GPU)")
        else:
            models[need.name] = _cpu(need)
    usage = tuple(_usage(g, needs, run) for g in ctx.gpus)
    return Placement(models=models, gpus=usage)


def _on_gpus(ctx: _Ctx, need: _Need, slot: _Slot) -> ModelPlacement:
    gpus = [ctx.gpus[p] for p in slot.positions]
    kv = _kv_of(ctx, need, slot)
    return ModelPlacement(
        model=need.name,
        gpu=GpuAssignment(device_ids=tuple(g.device_id for g in gpus)),
        memory_bytes=max(slot.bytes_on),
        gpu_memory_utilization=None if slot.pct is None else slot.pct / 100,
        tensor_parallel_size=len(gpus) if need.vllm else 1,
        compute_capability=_common_capability(gpus),
        max_model_len=need.max_model_len,
        kv_cache_bytes=kv,
        notes=_notes(need, slot, kv),
        server=need.server,
    )


def _common_capability(gpus: list[_Gpu]) -> tuple[int, int] | None:
    caps = [g.cc for g in gpus]
    return None if any(c is None for c in caps) else min(c for c in caps if c is not None)


def _notes(need: _Need, slot: _Slot, kv: int) -> tuple[str, ...]:
    notes = []
    if slot.split:
        notes.append(f"split over {len(slot.positions)} GPUs (tensor parallelism): too large for one")
    if need.elastic and kv < need.kv_target:
        seqs = kv // need.kv_per_token // need.seq_tokens
        notes.append(
            f"KV cache cut to {_gb(kv)} to fit (about {seqs} sequences of {need.seq_tokens} tokens, "
            f"planned {DEFAULT_NUM_SEQS}); a set max_num_seqs is never cut"
        )
    return tuple(notes)


def _usage(gpu: _Gpu, needs: list[_Need], run: _Run) -> GpuUsage:
    models = []
    for need in needs:
        slot = run.slots.get(need.name)
        if slot is not None and gpu.pos in slot.positions:
            models.append((need.name, slot.bytes_on[slot.positions.index(gpu.pos)]))
    used = sum(size for _, size in models)
    return GpuUsage(gpu.device_id, gpu.index, gpu.name, gpu.total, used, tuple(models), gpu.reserve)


def placement_report(placement: Placement) -> dict[str, Any]:
    """JSON-ready plan, for `plan-gpus --json`."""
    return {
        "gpus": [_gpu_report(g) for g in placement.gpus],
        "models": {name: _model_report(m) for name, m in placement.models.items()},
    }


def _gpu_report(g: GpuUsage) -> dict[str, Any]:
    return {
        "device_id": g.device_id,
        "index": g.index,
        "name": g.name,
        "total_bytes": g.total_bytes,
        "reserved_bytes": g.reserved_bytes,
        "used_bytes": g.used_bytes,
        "free_bytes": g.free_bytes,
        "models": [{"model": name, "bytes": size} for name, size in g.models],
    }


def _model_report(m: ModelPlacement) -> dict[str, Any]:
    gpu = m.gpu
    return {
        "server": m.server,
        "device": "cpu" if gpu is None else "gpu",
        "device_ids": list(gpu.device_ids) if gpu and gpu.device_ids else None,
        "count": gpu.count if gpu else None,
        "memory_bytes": m.memory_bytes,
        "gpu_memory_utilization": m.gpu_memory_utilization,
        "tensor_parallel_size": m.tensor_parallel_size,
        "compute_capability": "{}.{}".format(*m.compute_capability) if m.compute_capability else None,
        "max_model_len": m.max_model_len,
        "kv_cache_bytes": m.kv_cache_bytes,
        "notes": list(m.notes),
    }


def format_placement(placement: Placement) -> str:
    """A table per GPU: its models, each one's budget, used and free memory, and derived flags."""
    lines = []
    if not placement.gpus:
        lines.append("no GPU inventory in the profile: assignments only (declare `gpus:` for memory figures)")
    for g in placement.gpus:
        lines.append(
            f"GPU {g.device_id}" + (f" {g.name}" if g.name else "") + f": {_gb(g.total_bytes)} "
            f"({g.total_bytes // MIB} MiB), {_gb(g.used_bytes)} planned, {_gb(g.free_bytes)} free "
            f"({_gb(g.reserved_bytes)} kept for the driver)"
        )
        for name, size in g.models:
            lines.append(f"  {name:<32} {_gb(size):>9}  {_flags(placement.models[name])}".rstrip())
        if not g.models:
            lines.append("  (unused)")
    rest = [m for m in placement.models.values() if m.gpu is None or not placement.gpus]
    if rest:
        lines.append("models without a GPU budget:")
        lines += [f"  {m.model:<32} {_where(m):>9}  {_flags(m)}".rstrip() for m in rest]
    notes = [f"  {m.model}: {note}" for m in placement.models.values() for note in m.notes]
    return "\n".join(lines + (["notes:", *notes] if notes else []))


def _where(m: ModelPlacement) -> str:
    if m.gpu is None:
        return "CPU"
    return f"GPU {','.join(m.gpu.device_ids)}" if m.gpu.device_ids else f"{m.gpu.count} GPU"


def _flags(m: ModelPlacement) -> str:
    flags = [m.server or ""]
    if m.gpu_memory_utilization is not None:
        flags.append(f"gpu-memory-utilization {m.gpu_memory_utilization:.2f}")
    if m.tensor_parallel_size > 1:
        flags.append(f"tensor-parallel-size {m.tensor_parallel_size}")
    if m.max_model_len:
        flags.append(f"max-model-len {m.max_model_len}")
    if m.kv_cache_bytes:
        flags.append(f"KV cache {_gb(m.kv_cache_bytes)}")
    if m.server == "tei":
        flags.append("image " + catalog.tei_tag(m.compute_capability, m.gpu is not None))
    return ", ".join(f for f in flags if f)
