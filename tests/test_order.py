"""The per-GPU start order: computed once (plan/order.py), read by compose, the runbook and `diff`."""

from __future__ import annotations

from albert_deploy.plan.order import chained, gpu_start_order
from albert_deploy.plan.spec import GpuAssignment, GpuStartOrder, Service


def _server(name: str, *devices: str, after: tuple[str, ...] = ()) -> Service:
    gpu = GpuAssignment(device_ids=devices) if devices else None
    return Service(name=name, role="model", image="x", gpu=gpu, depends_on=after)


def test_servers_sharing_a_gpu_start_largest_first_and_spanning_servers_wait_on_each_gpu() -> None:
    services = [
        _server("small", "1"),
        _server("split", "0", "1"),  # tensor parallel over both GPUs
        _server("big", "0"),
        _server("cpu"),
        _server("ten", "10"),
        _server("two", "2", after=("redis",)),
    ]
    memory = {"small": 1, "split": 5, "big": 9, "ten": 1, "two": 1}
    order = gpu_start_order(services, memory)
    assert order == (
        GpuStartOrder("0", ("big", "split")),
        GpuStartOrder("1", ("split", "small")),
        GpuStartOrder("2", ("two",)),
        GpuStartOrder("10", ("ten",)),  # natural order: 2 before 10
    )
    deps = {s.name: s.depends_on for s in chained(services, order)}
    assert deps == {"small": ("split",), "split": ("big",), "big": (), "cpu": (), "ten": (), "two": ("redis",)}


def test_equal_budgets_start_by_name() -> None:
    order = gpu_start_order([_server("b", "0"), _server("a", "0")], {})
    assert order == (GpuStartOrder("0", ("a", "b")),)
