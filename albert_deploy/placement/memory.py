"""GPU placement, part 1: what one model needs on one GPU (docs/memory-model.md).

The estimate of each hosted model's weights, KV cache and runtime (:class:`_Need`), a GPU as the
planner sees it (:class:`_Gpu`, with the memory kept back for the driver), and the budget of a
model on given GPUs (:func:`_shape`). The constants are explained in docs/memory-model.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from albert_deploy import catalog
from albert_deploy.errors import PlacementError
from albert_deploy.profile.model import HostedModel

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
Request = str | int | list[int | str]


# --- GPUs -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Gpu:
    pos: int  # position in the inventory
    index: int
    device_id: str
    uuid: str | None
    name: str | None
    total: int
    cc: tuple[int, int] | None
    keep_free: int = 0  # the profile's gpu_keep_free: room for processes outside this stack

    @property
    def reserve(self) -> int:
        return max(GPU_RESERVE_MIN, int(self.total * GPU_RESERVE_FRACTION)) + self.keep_free

    @property
    def usable(self) -> int:
        return self.total - self.reserve

    @property
    def label(self) -> str:
        return f"GPU {self.device_id}" + (f" ({self.name})" if self.name else "")


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
