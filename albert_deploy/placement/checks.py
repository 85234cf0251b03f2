"""GPU placement: why a profile cannot be placed. The checks made before packing, and the
messages (the model, its figure, the GPU's figure, the remedies) when packing fails."""

from __future__ import annotations

from albert_deploy.errors import PlacementError
from albert_deploy.placement.memory import CUDA_GRAPH_HEADROOM, _Gpu, _Need, _shape
from albert_deploy.placement.search import _Ctx, _Run, _split_for
from albert_deploy.sizes import gb


def _require_weights(need: _Need) -> None:
    if need.weights is None:
        raise PlacementError(
            f"models.{need.pos}.memory: {need.name} is not in the catalog, so its size is unknown: "
            "give its weights' size as `memory:` (e.g. `memory: 16GB` for 8B parameters in bf16)"
        )


def _check_pins_apart(pinned: list[tuple[_Need, list[tuple[object, str]]]]) -> None:
    """The one check that two models do not pin the same GPU (unless ``share_gpus``).

    ``pinned``: each pinning model with its GPUs as (identity, name in the message). With an
    inventory the identity is the GPU's position, so one GPU named by index and by UUID is caught."""
    owners: dict[object, str] = {}
    for need, gpus in pinned:
        for key, label in gpus:
            if key in owners:
                raise PlacementError(
                    f"models.{need.pos}.gpus: GPU {label} is already given to '{owners[key]}': pin another GPU, "
                    "or set `share_gpus: true` to let models share it"
                )
            owners[key] = need.name


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
            _blame_keep_free(need, g, size)
            raise PlacementError(
                f"models.{need.pos}.{_key_at_fault(need)}: {need.name} needs {gb(size)} on {g.label}, which has {gb(g.total)} "
                f"({gb(g.usable)} usable): {_remedies(ctx, need, g)}"
            )


def _too_big_error(ctx: _Ctx, need: _Need) -> PlacementError:
    if not ctx.gpus:
        return PlacementError(f"{need.name} needs a GPU and the profile's `gpus` lists none: declare the host's GPUs")
    largest = ctx.largest
    size = max(_shape(need, need.kv_floor, need.count or 1, (largest.total,))[1])
    _blame_keep_free(need, largest, size)
    detail = f" ({_breakdown(need)})" if need.vllm else ""
    many = f"{need.count} × " if (need.count or 1) > 1 else ""
    key = f"models.{need.pos}.max_num_seqs: " if _seqs_set(need) else ""
    return PlacementError(
        f"{key}{need.name} needs {many}{gb(size)}{detail}, the largest GPU has {gb(largest.total)} "
        f"({gb(largest.usable)} usable): {_remedies(ctx, need, largest)}"
    )


def _blame_keep_free(need: _Need, gpu: _Gpu, size: int) -> None:
    """When the model would fit but for ``gpu_keep_free``, the message names that key."""
    if gpu.keep_free and size <= gpu.usable + gpu.keep_free:
        raise PlacementError(
            f"gpu_keep_free: {gb(gpu.keep_free)} kept free leaves {gb(max(gpu.usable, 0))} usable on {gpu.label} "
            f"({gb(gpu.total)}), and {need.name} needs {gb(size)}: keep less free, or use a larger GPU"
        )


def _key_at_fault(need: _Need) -> str:
    return "max_num_seqs" if _seqs_set(need) else "gpus"


def _seqs_set(need: _Need) -> bool:
    """The KV cache's floor is the profile's max_num_seqs, not one max_model_len sequence."""
    return bool(need.kv_per_token and need.max_model_len and need.kv_floor > need.kv_per_token * need.max_model_len)


def _breakdown(need: _Need) -> str:
    assert need.weights is not None
    kv = f"KV cache {gb(need.kv_floor)}"
    if _seqs_set(need):
        kv += f" for max_num_seqs {need.kv_floor // (need.kv_per_token * need.seq_tokens)} sequences"
    else:
        kv += f" for one {need.max_model_len}-token sequence" if need.kv_per_token else " (a quarter of the weights)"
    return f"weights {gb(need.weights)}, {kv}, runtime and CUDA graphs {gb(need.runtime + CUDA_GRAPH_HEADROOM)}"


def _remedies(ctx: _Ctx, need: _Need, gpu: _Gpu) -> str:
    if need.server == "tei":
        return "give it `gpus: cpu`, a larger GPU, or use an external endpoint"
    if not need.vllm:
        return "use a larger GPU or an external endpoint"
    options = ["lower max_num_seqs"] if _seqs_set(need) else []
    shorter = _fitting_len(need, gpu)
    if shorter:
        options.append(f"lower max_model_len (to {shorter} or less)")
    k = _split_that_fits(need, gpu)
    if k:
        options.append(f"add GPUs (it fits split over {k} × {gb(gpu.total)})")
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
        f"{need.name} needs {gb(size)}{f' on each of {k} GPUs' if k > 1 else ''} but {where} "
        f"(at most {gb(room)} on one); the GPU models need {gb(wanted)} at the least, the GPUs offer {gb(usable)}:\n"
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
        f"models.{need.pos}.gpus: {need.name} needs {gb(size)} on {ctx.gpus[p].label}, which has {gb(run.free[p])} "
        f"left after {', '.join(others)}: pin it to another GPU, lower max_model_len, or move a model off that GPU"
    )
