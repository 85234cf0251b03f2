"""GPU placement: goldens on real GPU sizes, the rules, and properties over random profiles."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from albert_deploy.errors import PlacementError
from albert_deploy.placement import inventory
from albert_deploy.placement import place as pl
from albert_deploy.placement.place import GIB, MIB, detect_gpus, place
from albert_deploy.placement.report import format_placement, placement_report
from albert_deploy.profile.model import Profile

LLM = "AgentPublic/guillaumetell-7b"
E5 = "intfloat/multilingual-e5-large"
RERANK = "BAAI/bge-reranker-v2-m3"
WHISPER = "openai/whisper-large-v3-turbo"
FOUR = [{"model": LLM}, {"model": E5}, {"model": RERANK}, {"model": WHISPER}]
H100 = {"memory": "81559MiB", "name": "NVIDIA H100 80GB HBM3"}
L4 = {"memory": "23034MiB", "name": "NVIDIA L4"}
T4 = {"memory": "15360MiB", "name": "Tesla T4"}
UUID0 = "GPU-11111111-2222-3333-4444-555555555555"
UUID1 = "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"


def profile(models: list[dict[str, Any]] | None = None, gpus: Any = None, **extra: Any) -> Profile:
    return Profile.model_validate({"models": models or FOUR, "gpus": gpus, **extra})


def pool(count: int, gpu: dict[str, str]) -> dict[str, Any]:
    return {"count": count, **gpu}


def devices(placement: pl.Placement, name: str) -> tuple[str, ...] | None:
    gpu = placement.models[name].gpu
    return None if gpu is None else gpu.device_ids


def check_invariants(placement: pl.Placement) -> None:
    """No GPU over-committed; budgets agree between models and GPUs; vLLM fits its own budget."""
    by_id = {g.device_id: g for g in placement.gpus}
    for g in placement.gpus:
        assert g.used_bytes == sum(size for _, size in g.models)
        assert g.used_bytes + g.reserved_bytes <= g.total_bytes
        assert g.free_bytes >= 0
    for m in placement.models.values():
        if m.gpu is None:
            assert m.memory_bytes == 0 and m.gpu_memory_utilization is None
            continue
        for device in m.gpu.device_ids:
            if not by_id:
                continue
            g = by_id[device]
            size = dict(g.models)[m.model]
            assert size <= m.memory_bytes
            if m.gpu_memory_utilization is not None:
                assert 0 < m.gpu_memory_utilization <= 1
                assert m.gpu_memory_utilization == math.floor(m.gpu_memory_utilization * 100 + 1e-9) / 100
                assert m.gpu_memory_utilization * g.total_bytes + pl.CUDA_GRAPH_HEADROOM <= size + 1


# --- Goldens ---------------------------------------------------------------------------------------


def test_h100_holds_all_four_and_gives_the_llm_the_rest() -> None:
    plan = place(profile(gpus=pool(1, H100)))
    check_invariants(plan)
    assert [devices(plan, n) for n in plan.models] == [("0",)] * 4
    llm = plan.models["guillaumetell-7b"]
    total = 81559 * MIB
    usable = total - plan.gpus[0].reserved_bytes
    others = sum(plan.models[n].memory_bytes for n in plan.models if n != "guillaumetell-7b")
    # 18.5 GiB would do (0.24); the fill gives it every whole percent the other three leave.
    assert llm.gpu_memory_utilization == 0.86
    assert llm.memory_bytes == math.ceil(0.86 * total) + GIB
    assert llm.memory_bytes + others <= usable < math.ceil(0.87 * total) + GIB + others
    assert llm.kv_cache_bytes == 86 * total // 100 - GIB - int(7.24e9 * 2)  # runtime 1 GiB; about 54 GiB
    assert llm.max_model_len == 8192 and llm.tensor_parallel_size == 1 and not llm.notes
    assert plan.gpus[0].free_bytes < total // 100
    assert "gpu-memory-utilization 0.86, max-model-len 8192, KV cache 58.0 GB" in format_placement(plan)
    assert placement_report(plan)["models"]["guillaumetell-7b"]["kv_cache_bytes"] == llm.kv_cache_bytes
    assert plan.models["multilingual-e5-large"].compute_capability == (9, 0)
    assert plan.gpus[0].models == tuple((n, plan.models[n].memory_bytes) for n in plan.models)


def test_two_l4_give_the_llm_one_gpu_and_the_rest_the_other() -> None:
    plan = place(profile(gpus=pool(2, L4)))
    check_invariants(plan)
    assert devices(plan, "guillaumetell-7b") == ("0",)
    assert plan.models["guillaumetell-7b"].gpu_memory_utilization == 0.90  # 0.83 before the fill, capped at 0.90
    assert plan.models["guillaumetell-7b"].kv_cache_bytes > 5 * GIB
    assert {devices(plan, n) for n in ("multilingual-e5-large", "bge-reranker-v2-m3", "whisper-large-v3-turbo")} == {
        ("1",)
    }
    assert all(not m.notes for m in plan.models.values())
    assert plan.models["bge-reranker-v2-m3"].compute_capability == (8, 9)


@pytest.mark.parametrize("gpu", [L4, {"memory": "24GB"}], ids=["L4", "24GB"])
def test_one_24gb_gpu_cuts_the_kv_cache_and_moves_tei_to_cpu(gpu: dict[str, str]) -> None:
    plan = place(profile(gpus=pool(1, gpu)))
    check_invariants(plan)
    llm = plan.models["guillaumetell-7b"]
    assert devices(plan, "guillaumetell-7b") == devices(plan, "whisper-large-v3-turbo") == ("0",)
    assert llm.gpu_memory_utilization == 0.75  # all the GPU whisper leaves
    assert plan.gpus[0].free_bytes * 100 < plan.gpus[0].total_bytes
    assert 8192 * 128 * 1024 <= llm.kv_cache_bytes < 4 * GIB  # at least one full sequence, less than planned
    assert any("KV cache cut" in note for note in llm.notes)
    for name in ("multilingual-e5-large", "bge-reranker-v2-m3"):
        assert plan.models[name].gpu is None
        assert "runs on CPU" in plan.models[name].notes[0]


def test_one_24gb_gpu_refuses_tei_that_requires_a_gpu() -> None:
    models: list[dict[str, Any]] = [{"model": LLM}, {"model": E5, "gpus": 1}, {"model": WHISPER}]
    with pytest.raises(PlacementError, match=r"multilingual-e5-large needs 2\.7 GB but no GPU has that much left"):
        place(profile(models, pool(1, L4)))


def test_one_t4_is_a_clear_error() -> None:
    with pytest.raises(PlacementError) as err:
        place(profile(gpus=pool(1, T4)))
    message = str(err.value)
    assert message.startswith("guillaumetell-7b needs 17.8 GB (weights 14.5 GB")
    assert "the largest GPU has 16.1 GB" in message
    assert "split over 2 × 16.1 GB" in message and "external endpoint" in message
    assert message.count("\n") <= 1


def test_two_t4_split_the_llm() -> None:
    plan = place(profile(gpus=pool(2, T4)))
    check_invariants(plan)
    llm = plan.models["guillaumetell-7b"]
    assert llm.tensor_parallel_size == 2 and llm.gpu is not None and llm.gpu.device_ids == ("0", "1")
    assert any("tensor parallelism" in note for note in llm.notes)
    assert plan.models["bge-reranker-v2-m3"].compute_capability == (7, 5)


# --- Rules -------------------------------------------------------------------------------------------


def test_cpu_and_external_models() -> None:
    models: list[dict[str, Any]] = [
        {"model": E5, "gpus": "cpu"},
        {"model": RERANK, "gpus": 0},
        {"name": "remote", "type": "text-generation", "url": "https://llm.example.org", "model": "m"},
    ]
    plan = place(profile(models, pool(1, L4)))
    assert list(plan.models) == ["multilingual-e5-large", "bge-reranker-v2-m3"]
    assert all(m.gpu is None and m.memory_bytes == 0 for m in plan.models.values())
    assert plan.gpus[0].models == ()


def test_without_inventory_pins_and_counts_pass_through() -> None:
    models: list[dict[str, Any]] = [
        {"model": LLM, "gpus": 2},
        {"model": E5},
        {"model": RERANK, "gpus": ["GPU-abc"]},
        {"model": WHISPER, "gpus": [1]},
    ]
    plan = place(profile(models))
    assert devices(plan, "bge-reranker-v2-m3") == ("GPU-abc",)
    assert plan.gpus == ()
    llm = plan.models["guillaumetell-7b"]
    assert llm.gpu == pl.GpuAssignment(count=2) and llm.tensor_parallel_size == 2
    assert llm.max_model_len == 8192 and llm.gpu_memory_utilization is None and llm.memory_bytes == 0
    assert plan.models["multilingual-e5-large"].gpu is None
    assert devices(plan, "whisper-large-v3-turbo") == ("1",)
    assert "no GPU inventory" in format_placement(plan)


def test_without_inventory_tei_on_several_gpus_is_refused() -> None:
    with pytest.raises(PlacementError, match=r"models\.2\.gpus: tei runs on one GPU"):
        place(profile([{"model": LLM, "gpus": 1}, {"model": E5}, {"model": RERANK, "gpus": ["GPU-abc", 3]}]))


def test_without_inventory_a_gpu_model_on_auto_asks_for_gpus() -> None:
    with pytest.raises(PlacementError, match=r"models\.3\.gpus: whisper-large-v3-turbo needs a GPU .* add `gpus:`"):
        place(profile([{"model": LLM, "gpus": [0]}, {"model": E5}, {"model": RERANK}, {"model": WHISPER}]))


def test_split_must_divide_attention_heads() -> None:
    with pytest.raises(PlacementError, match=r"models\.0\.gpus: .* 32 attention heads, so 3 GPUs cannot work"):
        place(profile([{"model": LLM, "gpus": 3}, {"model": E5}]))


def test_pins_by_index_and_uuid() -> None:
    gpus = [{"index": 0, "uuid": UUID0, **L4}, {"index": 1, "uuid": UUID1, **L4}]
    models: list[dict[str, Any]] = [
        {"model": LLM, "gpus": [1]},
        {"model": E5, "gpus": [UUID0.lower()]},
        {"model": WHISPER},
    ]
    plan = place(profile(models, gpus))
    check_invariants(plan)
    assert devices(plan, "guillaumetell-7b") == (UUID1,)
    assert devices(plan, "multilingual-e5-large") == (UUID0,)
    assert devices(plan, "whisper-large-v3-turbo") == (UUID0,)  # the LLM leaves too little on GPU 1


def test_one_gpu_pinned_by_index_and_by_uuid_needs_share_gpus() -> None:
    gpus = [{"index": 0, "uuid": UUID0, **H100}]
    models: list[dict[str, Any]] = [{"model": E5, "gpus": [0]}, {"model": RERANK, "gpus": [UUID0]}]
    with pytest.raises(
        PlacementError, match=r"models\.1\.gpus: GPU 0 \(GPU-1111.*\) is already given to 'multilingual-e5"
    ):
        place(profile(models, gpus))
    assert devices(place(profile(models, gpus, share_gpus=True)), "bge-reranker-v2-m3") == (UUID0,)


def test_unknown_pin_names_the_key_and_the_known_gpus() -> None:
    with pytest.raises(PlacementError, match=r"models\.1\.gpus: GPU 7 is not in the profile's `gpus` \(known: 0, 1\)"):
        place(profile([{"model": LLM}, {"model": E5, "gpus": [7]}], pool(2, L4)))


def test_models_left_to_auto_use_the_room_on_pinned_gpus() -> None:
    models: list[dict[str, Any]] = [{"model": WHISPER, "gpus": [1]}, {"model": E5}, {"model": RERANK}]
    plan = place(profile(models, pool(2, H100)))
    assert {devices(plan, n) for n in plan.models} == {("1",)}
    spread = place(profile(models, pool(2, H100), placement="spread"))
    assert devices(spread, "whisper-large-v3-turbo") == ("1",)
    # Spread balances memory: both embedding models (5.4 GB) go opposite whisper (4.3 GB).
    assert devices(spread, "multilingual-e5-large") == devices(spread, "bge-reranker-v2-m3") == ("0",)


def test_shared_pins_never_over_commit() -> None:
    models: list[dict[str, Any]] = [
        {"model": LLM, "gpus": [0]},
        {"model": E5},
        {"model": WHISPER, "gpus": [0]},
        {"model": LLM, "name": "llm2", "gpus": [0]},
    ]
    message = r"models\.3\.gpus: llm2 needs .* on GPU 0 \(NVIDIA L4\), which has .* left after"
    with pytest.raises(PlacementError, match=message):
        place(profile(models, pool(1, L4), share_gpus=True))


def test_pack_fills_one_gpu_and_spread_balances() -> None:
    models = [{"model": E5}, {"model": RERANK}, {"model": WHISPER}, {"model": LLM}]
    packed = place(profile(models, pool(2, H100)))
    assert {devices(packed, n) for n in packed.models} == {("0",)}
    spread = place(profile(models, pool(2, H100), placement="spread"))
    check_invariants(spread)
    assert all(g.models for g in spread.gpus)
    assert devices(spread, "guillaumetell-7b") != devices(spread, "whisper-large-v3-turbo")


def test_too_large_for_one_gpu_is_split_over_a_power_of_two() -> None:
    models = [{"model": LLM, "memory": "120GB"}, {"model": E5}]
    plan = place(profile(models, pool(4, H100)))
    check_invariants(plan)
    llm = plan.models["guillaumetell-7b"]
    assert llm.tensor_parallel_size == 2 and llm.gpu is not None and len(llm.gpu.device_ids) == 2
    assert llm.memory_bytes < 80 * GIB


def test_only_vllm_splits() -> None:
    models = [{"model": E5}, {"model": WHISPER, "memory": "30GB"}]
    with pytest.raises(
        PlacementError, match=r"whisper-large-v3-turbo needs 32\.7 GB, the largest GPU has 24\.2 GB .*larger GPU"
    ):
        place(profile(models, pool(2, L4)))


def test_outside_the_catalog_needs_memory() -> None:
    custom = {"model": "org/my-llm", "server": "vllm", "type": "text-generation"}
    with pytest.raises(PlacementError, match=r"models\.1\.memory: my-llm is not in the catalog"):
        place(profile([{"model": E5}, custom], pool(1, H100)))
    plan = place(profile([{"model": E5}, {**custom, "memory": "16GB", "max_model_len": 4096}], pool(1, H100)))
    llm = plan.models["my-llm"]
    assert llm.max_model_len == 4096 and llm.kv_cache_bytes >= 4 * 10**9  # a quarter of the weights
    # Without an inventory there are no sizes, so none is asked for.
    assert devices(place(profile([{"model": E5}, {**custom, "gpus": [0]}])), "my-llm") == ("0",)


def test_max_model_len_beyond_the_model() -> None:
    with pytest.raises(PlacementError, match=r"models\.0\.max_model_len: 65536 is beyond guillaumetell-7b's 32768"):
        place(profile([{"model": LLM, "max_model_len": 65536}, {"model": E5}], pool(1, H100)))


def test_fixed_max_num_seqs_is_not_cut() -> None:
    models: list[dict[str, Any]] = [{"model": LLM, "max_num_seqs": 8}, {"model": WHISPER}, {"model": E5, "gpus": "cpu"}]
    with pytest.raises(PlacementError, match=r"whisper-large-v3-turbo needs 4\.3 GB but no GPU has that much left"):
        place(profile(models, pool(1, L4)))
    plan = place(profile([{"model": LLM, "max_num_seqs": 2}, {"model": E5}], pool(1, L4)))
    assert not plan.models["guillaumetell-7b"].notes


def test_lower_max_model_len_is_suggested_when_it_helps() -> None:
    models: list[dict[str, Any]] = [{"model": LLM, "max_model_len": 32768, "memory": "18GB"}, {"model": E5}]
    message = r"lower max_model_len \(to 25600 or less\), add GPUs \(it fits split over 2 × 24\.2 GB\)"
    with pytest.raises(PlacementError, match=message):
        place(profile(models, pool(1, L4)))


def test_inventory_checks() -> None:
    with pytest.raises(PlacementError, match="GPU 0 is listed twice"):
        place(profile(gpus=[{"index": 0, **L4}, {"index": 0, **L4}]))
    with pytest.raises(
        PlacementError, match=r"models\.0\.gpus: guillaumetell-7b asks for 4 GPUs, the profile's `gpus` has 2$"
    ):
        place(profile([{"model": LLM, "gpus": 4}, {"model": E5}], pool(2, H100)))
    with pytest.raises(PlacementError, match=r"^guillaumetell-7b needs a GPU and the profile's `gpus` lists none"):
        place(profile(gpus=[]))
    assert place(profile([{"model": E5}], [])).models["multilingual-e5-large"].gpu is None


def test_a_count_needs_that_many_gpus_of_one_size() -> None:
    gpus = [{"index": 0, **H100}, {"index": 1, **L4}]
    with pytest.raises(
        PlacementError, match=r"models\.0\.gpus: .* asks for 2 GPUs of one size .* pin the GPUs instead"
    ):
        place(profile([{"model": LLM, "gpus": 2}, {"model": E5}], gpus))
    plan = place(profile([{"model": LLM, "gpus": [0, 1]}, {"model": E5}], gpus))
    assert plan.models["guillaumetell-7b"].tensor_parallel_size == 2


def test_utilization_is_exact_whole_percent_of_each_gpu() -> None:
    gpus = [{"index": 0, **H100}, {"index": 1, **L4}, {"index": 2, **T4}]
    models: list[dict[str, Any]] = [{"model": LLM, "gpus": [0, 1]}, {"model": E5}]
    plan = place(profile(models, gpus))
    check_invariants(plan)
    sizes = {g.device_id: dict(g.models).get("guillaumetell-7b") for g in plan.gpus}
    assert sizes["0"] is not None and sizes["1"] is not None and sizes["0"] > sizes["1"]


def test_the_fill_stops_at_vllm_default_share() -> None:
    plan = place(profile([{"model": LLM}, {"model": E5, "gpus": "cpu"}], pool(1, H100)))
    assert plan.models["guillaumetell-7b"].gpu_memory_utilization == 0.90
    assert plan.gpus[0].free_bytes > 2 * GIB  # 0.90 + 1 GiB of CUDA graphs leave this much on an H100


def test_the_fill_splits_a_gpu_by_kv_need() -> None:
    # KV need: 8 × 4096 tokens (4 GiB) against 8 × 1024 tokens (1 GiB).
    models: list[dict[str, Any]] = [
        {"model": LLM, "name": "long"},
        {"model": LLM, "name": "short", "max_model_len": 1024},
        {"model": E5, "gpus": "cpu"},
    ]
    plan = place(profile(models, pool(1, H100)))
    check_invariants(plan)
    long, short = plan.models["long"].kv_cache_bytes, plan.models["short"].kv_cache_bytes
    assert abs(long - 4 * short) < 4 * 81559 * MIB // 100  # proportional, within whole-percent rounding
    assert plan.gpus[0].free_bytes * 100 < plan.gpus[0].total_bytes


def test_a_split_model_is_filled_up_to_its_tightest_gpu() -> None:
    models: list[dict[str, Any]] = [
        {"model": LLM, "gpus": [0, 1]},
        {"model": WHISPER, "gpus": [0]},
        {"model": E5, "gpus": "cpu"},
    ]
    plan = place(profile(models, pool(2, L4), share_gpus=True))
    check_invariants(plan)
    gpu0, gpu1 = plan.gpus
    assert gpu0.free_bytes * 100 < gpu0.total_bytes
    assert gpu1.free_bytes > plan.models["whisper-large-v3-turbo"].memory_bytes - gpu0.total_bytes // 100


def test_auto_inventory_detects(monkeypatch: pytest.MonkeyPatch) -> None:
    detected = pl.Gpu(index=0, uuid=UUID0, memory=81559 * MIB, name="NVIDIA H100 80GB HBM3", compute_capability=None)
    monkeypatch.setattr(inventory, "detect_gpus", lambda: [detected])
    plan = place(profile(gpus="auto"))
    assert devices(plan, "guillaumetell-7b") == (UUID0,)


def fake_nvml(gpus: list[tuple[str, str, int, tuple[int, int]]], fail: bool = False) -> types.ModuleType:
    module = types.ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    def init() -> None:
        if fail:
            raise NVMLError("Driver Not Loaded")

    module.NVMLError = NVMLError  # type: ignore[attr-defined]
    module.nvmlInit = init  # type: ignore[attr-defined]
    module.nvmlShutdown = lambda: None  # type: ignore[attr-defined]
    module.nvmlDeviceGetCount = lambda: len(gpus)  # type: ignore[attr-defined]
    module.nvmlDeviceGetHandleByIndex = lambda i: gpus[i]  # type: ignore[attr-defined]
    module.nvmlDeviceGetName = lambda h: h[0].encode()  # type: ignore[attr-defined]
    module.nvmlDeviceGetUUID = lambda h: h[1]  # type: ignore[attr-defined]
    module.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(total=h[2])  # type: ignore[attr-defined]
    module.nvmlDeviceGetCudaComputeCapability = lambda h: h[3]  # type: ignore[attr-defined]
    return module


def test_detect_gpus_reads_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([("NVIDIA L4", UUID1, 23034 * MIB, (8, 9))]))
    (gpu,) = detect_gpus()
    assert (gpu.index, gpu.uuid, gpu.memory) == (0, UUID1, 23034 * MIB)
    assert (gpu.name, gpu.compute_capability) == ("NVIDIA L4", "8.9")


NO_DRIVER = r"^no NVIDIA driver found \(.*\): declare `gpus:` in the profile or use a CPU profile$"


@pytest.mark.parametrize(
    "module", [None, fake_nvml([], fail=True), fake_nvml([])], ids=["missing", "no-driver", "none"]
)
def test_detect_gpus_without_driver(monkeypatch: pytest.MonkeyPatch, module: types.ModuleType | None) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", module)  # None makes the import fail
    with pytest.raises(PlacementError, match=NO_DRIVER):
        detect_gpus()


def test_report_and_table() -> None:
    plan = place(profile(gpus=pool(1, L4)))
    report = json.loads(json.dumps(placement_report(plan)))
    assert report["models"]["guillaumetell-7b"]["gpu_memory_utilization"] == 0.75
    assert report["models"]["multilingual-e5-large"]["device"] == "cpu"
    assert report["gpus"][0]["free_bytes"] == plan.gpus[0].free_bytes
    table = format_placement(plan)
    assert "GPU 0 NVIDIA L4" in table and "gpu-memory-utilization 0.75" in table and "image cpu-1.8.3" in table


def test_importing_placement_loads_neither_nvml_nor_numpy() -> None:
    code = "import sys, albert_deploy.placement.place; print(sorted({'pynvml', 'numpy'} & set(sys.modules)))"
    root = Path(pl.__file__).parent.parent
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- Properties ---------------------------------------------------------------------------------------

GPU_SIZES = [H100, L4, T4, {"memory": "40960MiB", "name": "NVIDIA A100-SXM4-40GB"}, {"memory": "48GB"}]


@st.composite
def profiles(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        gpus: Any = {"count": draw(st.integers(1, 6)), **draw(st.sampled_from(GPU_SIZES))}
        count = gpus["count"]
    else:
        kinds = draw(st.lists(st.sampled_from(GPU_SIZES), min_size=1, max_size=6))
        gpus = [{"index": i, **kind} for i, kind in enumerate(kinds)]
        count = len(kinds)
    models: list[dict[str, Any]] = [{"model": E5, "name": "e5", "gpus": draw(st.sampled_from(["auto", "cpu", 1]))}]
    for i in range(draw(st.integers(0, 10))):
        models.append(draw(model(i, count)))
    mode = draw(st.sampled_from(["pack", "spread"]))
    return {"models": models, "gpus": gpus, "placement": mode, "share_gpus": draw(st.booleans())}


@st.composite
def model(draw: st.DrawFn, i: int, gpu_count: int) -> dict[str, Any]:
    kind = draw(st.sampled_from(["llm", "tei", "whisper", "custom"]))
    size = f"{draw(st.integers(1, 90))}GB"
    kinds: dict[str, dict[str, Any]] = {
        "llm": {"model": LLM, "max_model_len": draw(st.sampled_from([None, 2048, 8192, 32768]))},
        "tei": {"model": RERANK},
        "whisper": {"model": WHISPER},
        "custom": {"model": f"org/m{i}", "server": "vllm", "type": "text-generation", "memory": size},
    }
    base = kinds[kind]
    base = {k: v for k, v in base.items() if v is not None}
    base["name"] = f"m{i}"
    if kind == "llm" and draw(st.booleans()):
        base["max_num_seqs"] = draw(st.integers(1, 16))
    request = draw(st.sampled_from(["auto", "auto", "pin", "count"]))
    if request == "pin":
        most = 2 if kind == "llm" else 1
        base["gpus"] = draw(st.lists(st.integers(0, gpu_count - 1), min_size=1, max_size=most, unique=True))
    elif request == "count":
        base["gpus"] = 1 if kind != "llm" else draw(st.sampled_from([1, 2]))
    if kind == "tei" and draw(st.booleans()):
        base["gpus"] = "cpu"
    return base


SMALL_GPUS = [L4, T4, {"memory": "24GB"}, {"memory": "23028MiB", "name": "NVIDIA A10"}]


@st.composite
def tight_profiles(draw: st.DrawFn) -> dict[str, Any]:
    """Catalog models on one to three small GPUs: where KV caches get cut and TEI moves to CPU."""
    kinds = draw(st.lists(st.sampled_from(SMALL_GPUS), min_size=1, max_size=3))
    models: list[dict[str, Any]] = [{"model": E5, "name": "e5"}, {"model": RERANK, "name": "rerank"}]
    for i in range(draw(st.integers(1, 3))):
        llm: dict[str, Any] = {"model": LLM, "name": f"llm{i}"}
        llm["max_model_len"] = draw(st.sampled_from([1024, 4096, 8192, 16384]))
        if draw(st.booleans()):
            llm["max_num_seqs"] = draw(st.integers(1, 12))
        models.append(llm)
    if draw(st.booleans()):
        models.append({"model": WHISPER})
    gpus = [{"index": i, **kind} for i, kind in enumerate(kinds)]
    return {"models": models, "gpus": gpus, "placement": draw(st.sampled_from(["pack", "spread"]))}


def validated(data: dict[str, Any]) -> Profile:
    try:
        return Profile.model_validate(data)
    except ValidationError:
        assume(False)
        raise


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(profiles(), tight_profiles()))
def test_every_model_placed_or_a_clear_error_and_no_gpu_over_committed(data: dict[str, Any]) -> None:
    prof = validated(data)
    try:
        plan = place(prof)
    except PlacementError as err:
        assert str(err) and str(err).count("\n") <= 1
        return
    assert list(plan.models) == [m.name for m in prof.hosted]
    check_invariants(plan)
    for m in prof.hosted:
        placed = plan.models[m.name or ""]
        if isinstance(m.gpus, list):
            assert placed.gpu is not None and placed.gpu.device_ids == tuple(str(p) for p in m.gpus)
        on_cpu = m.gpus == "cpu" or m.gpus == 0
        if on_cpu:
            assert placed.gpu is None
        if m.server != "tei" and not on_cpu:
            assert placed.gpu is not None
        if m.server == "vllm":
            assert placed.gpu is not None and placed.tensor_parallel_size == len(placed.gpu.device_ids)
            floor = 128 * 1024 * (placed.max_model_len or 0) if m.model == LLM else 0
            assert placed.kv_cache_bytes >= floor  # one full sequence: vLLM's start-up check
        if m.model == LLM and placed.gpu is not None:
            check_llm_kv(plan, placed, m.max_num_seqs)
        if placed.gpu is None and m.gpus == "auto":
            assert m.server == "tei" and "runs on CPU" in placed.notes[0]


def check_llm_kv(plan: pl.Placement, placed: pl.ModelPlacement, max_num_seqs: int | None) -> None:
    """The KV cache reported is what the final utilization leaves, and a note says when it is short."""
    assert placed.gpu is not None and placed.gpu_memory_utilization is not None and placed.max_model_len
    k = placed.tensor_parallel_size
    totals = [g.total_bytes for g in plan.gpus if g.device_id in placed.gpu.device_ids]
    inner = min(round(placed.gpu_memory_utilization * 100) * t // 100 for t in totals)
    overhead = GIB + (GIB // 2 if k > 1 else 0)  # runtime, and NCCL when split
    assert placed.kv_cache_bytes == max(0, (inner - overhead) * k - int(7.24e9 * 2))
    if not max_num_seqs:
        target = 128 * 1024 * max(placed.max_model_len, 8 * min(placed.max_model_len, 4096))
        assert any("KV cache cut" in n for n in placed.notes) == (placed.kv_cache_bytes < target)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(profiles(), tight_profiles()))
def test_gpus_with_a_vllm_model_are_filled(data: dict[str, Any]) -> None:
    """Less than 1 % of a vLLM GPU stays free beyond the reserve, unless the 0.90 cap bound every vLLM
    model on it, or a split model (one utilization for all its GPUs) was bound by another of its GPUs."""
    try:
        plan = place(validated(data))
    except PlacementError:
        return
    full = {g.device_id for g in plan.gpus if g.total_bytes - g.used_bytes < g.total_bytes / 100 + g.reserved_bytes}
    for g in plan.gpus:
        if g.device_id in full:
            continue
        for name, _ in g.models:
            m = plan.models[name]
            if m.gpu_memory_utilization is not None and m.gpu is not None:
                assert m.gpu_memory_utilization >= 0.90 or full & set(m.gpu.device_ids), (g, m)


@settings(max_examples=150, deadline=None)
@given(st.one_of(profiles(), tight_profiles()))
def test_plans_are_deterministic(data: dict[str, Any]) -> None:
    first = validated(data)
    try:
        plan = place(first)
    except PlacementError as err:
        with pytest.raises(PlacementError) as again:
            place(Profile.model_validate(data))
        assert str(again.value) == str(err)
        return
    assert place(Profile.model_validate(data)) == plan
    assert placement_report(place(first)) == placement_report(plan)


def test_gpu_keep_free_leaves_room_for_processes_outside_the_stack() -> None:
    def plan(extra: dict[str, Any]) -> Any:
        data = {
            "gpus": {"count": 1, "name": "NVIDIA H100 80GB HBM3"},
            "models": [{"model": "AgentPublic/guillaumetell-7b"}, {"model": "intfloat/multilingual-e5-large"}],
            **extra,
        }
        return place(Profile.model_validate(data))

    plain, kept = plan({}), plan({"gpu_keep_free": "8GB"})
    assert kept.gpus[0].reserved_bytes == plain.gpus[0].reserved_bytes + 8 * 10**9
    assert kept.gpus[0].used_bytes + kept.gpus[0].reserved_bytes <= kept.gpus[0].total_bytes
    assert kept.gpus[0].free_bytes >= 0
    assert (
        kept.models["guillaumetell-7b"].gpu_memory_utilization < plain.models["guillaumetell-7b"].gpu_memory_utilization
    )
