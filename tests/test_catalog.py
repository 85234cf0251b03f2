"""The catalog is data that other modules trust: keep it coherent."""

from __future__ import annotations

from typing import get_args

from albert_deploy import catalog


def test_server_names_match_the_profile_type() -> None:
    assert set(catalog.SERVERS) == set(get_args(catalog.ServerName))


def test_every_catalog_model_is_served_by_a_server_that_suits_its_type() -> None:
    for model in catalog.MODELS.values():
        assert model.type in catalog.SERVERS[model.server].serves, model.hf_id


def test_images_are_pinned() -> None:
    for server in catalog.SERVERS.values():
        image = server.image.format(variant="cpu-1.8.3")
        assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), image


def test_tei_image_follows_the_gpu_generation() -> None:
    assert catalog.tei_tag((9, 0), on_gpu=True) == "hopper-1.8.3"
    assert catalog.tei_tag((8, 9), on_gpu=True) == "89-1.8.3"
    assert catalog.tei_tag((8, 6), on_gpu=True) == "86-1.8.3"
    assert catalog.tei_tag((8, 0), on_gpu=True) == "1.8.3"
    assert catalog.tei_tag((7, 5), on_gpu=True) == "turing-1.8.3"
    assert catalog.tei_tag((7, 0), on_gpu=True) == "cpu-1.8.3"  # below 7.5: unsupported on GPU
    assert catalog.tei_tag(None, on_gpu=False) == "cpu-1.8.3"


def test_known_gpus_are_found_by_their_nvidia_smi_name() -> None:
    gpu = catalog.gpu_by_name("NVIDIA L4")
    assert gpu is not None and gpu.memory_mib == 23034 and gpu.compute_capability == (8, 9)
    assert catalog.gpu_by_name("NVIDIA Imaginary 9000") is None
