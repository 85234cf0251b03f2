"""render --target kubernetes: every shipped profile validates against the Kubernetes schemas
(kubernetes-validate, offline), golden files for the default profile, secrets only in the Secret,
probe budgets, GPU requests, escaping, and the CLI."""

from __future__ import annotations

import copy
import functools
import os
import re
import stat
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner
from kubernetes_validate import utils as kv_utils

from albert_deploy import commands
from albert_deploy.cli import cli
from albert_deploy.errors import ProfileError, RenderError
from albert_deploy.plan.access import ACKNOWLEDGEMENT
from albert_deploy.plan.build import build_plan
from albert_deploy.profile.load import validate_profile
from albert_deploy.render.files import render_plan
from albert_deploy.render.kubernetes.objects import escape
from albert_deploy.render.kubernetes.render import SECRET_FILE, previous_secrets, render_kubernetes

from .helpers import PROFILES, REPO

GOLDEN = REPO / "tests" / "golden" / "kubernetes-default"
# The newest release kubernetes-validate ships schemas for, and the oldest one still supported then.
KUBERNETES_VERSIONS = ("1.37", "1.35")

# kubernetes-validate reads its schema files again for every document: read each once.
kv_utils.schema_contents = functools.cache(kv_utils.schema_contents)


def fixed_secrets(plan: Any) -> dict[str, str]:
    return {name: f"test-{name.lower().replace('_', '-')}-0123456789" for name in plan.secrets}


def render(data: dict[str, Any] | None = None, profile: Path | None = None) -> tuple[Any, Any, dict[str, str]]:
    if data is None:
        data = yaml.safe_load((profile or REPO / "profiles" / "default.yaml").read_text())
    if str(data.get("api", {}).get("release")) == "0.0.3":  # no authentication: say so in words (test_api_access)
        data = {**data, "api": {**data["api"], "allow_unauthenticated_access": ACKNOWLEDGEMENT}}
    p = validate_profile(data, "test.yaml")
    plan = build_plan(p, "test.yaml")
    return p, plan, render_kubernetes(plan, fixed_secrets(plan)).files


@functools.cache
def _load_all(text: str) -> tuple[dict[str, Any], ...]:
    return tuple(d for d in yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) if d)


def documents(files: dict[str, str]) -> list[dict[str, Any]]:
    """Every manifest, loaded once per text: do not change them."""
    return [d for name, text in files.items() if not name.endswith("kustomization.yaml") for d in _load_all(text)]


def objects(files: dict[str, str], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents(files) if d["kind"] == kind}


def workloads(files: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {**objects(files, "Deployment"), **objects(files, "StatefulSet")}


def container(files: dict[str, str], name: str) -> dict[str, Any]:
    return workloads(files)[name]["spec"]["template"]["spec"]["containers"][0]


def kubernetes_expand(text: str, env: dict[str, str]) -> str:
    """What the kubelet makes of a command, arg or env value (k8s.io/.../third_party/forked/golang/expansion)."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            following = text[i + 1]
            if following == "$":
                out.append("$")
            elif following == "(" and ")" in text[i + 2 :]:
                end = text.index(")", i + 2)
                out.append(env.get(text[i + 2 : end], text[i : end + 1]))
                i = end + 1
                continue
            else:
                out.append(text[i : i + 2])
            i += 2
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def profile_variants() -> list[tuple[Path, dict[str, Any]]]:
    variants: list[tuple[Path, dict[str, Any]]] = [(p, {}) for p in PROFILES]
    default = REPO / "profiles" / "default.yaml"
    variants.append((default, {"vector_store": "elasticsearch"}))
    variants.append((default, {"release": "0.0.3", "vector_store": "elasticsearch"}))
    return variants


@pytest.mark.parametrize(
    ("profile", "api"), profile_variants(), ids=lambda v: getattr(v, "stem", None) or "-".join(v.values()) or "as-is"
)
def test_every_shipped_profile_validates_against_the_kubernetes_schemas(profile: Path, api: dict[str, str]) -> None:
    data = yaml.safe_load(profile.read_text())
    data.setdefault("api", {}).update(api)
    _, plan, files = render(data)
    docs = documents(files)
    assert {d["kind"] for d in docs} >= {"Namespace", "Secret", "ConfigMap", "Deployment", "StatefulSet", "Service"}
    for doc in docs:
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as err:
                pytest.fail(f"{doc['kind']} {doc['metadata']['name']} (Kubernetes {version}): {err.message} at "
                            f"{'.'.join(map(str, err.path))}")  # fmt: skip
    for part in ("app", "data"):
        kustomization = yaml.safe_load(files[f"{part}/kustomization.yaml"])
        assert kustomization["kind"] == "Kustomization"
        assert kustomization["resources"] == [
            n.removeprefix(f"{part}/")
            for n in files
            if n.startswith(f"{part}/") and not n.endswith("kustomization.yaml")
        ]
    for doc in docs:
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "albert-deploy"
        assert labels["app.kubernetes.io/instance"] == plan.project
        assert {"app.kubernetes.io/name", "app.kubernetes.io/component"} <= set(labels)
    # Model servers and the API: Deployment and Service; databases: StatefulSet with a claim; caches: PVCs.
    deployments, statefulsets = objects(files, "Deployment"), objects(files, "StatefulSet")
    services, claims = objects(files, "Service"), objects(files, "PersistentVolumeClaim")
    for s in plan.services:
        assert s.name in services
        if s.role == "database":
            assert statefulsets[s.name]["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]
        else:
            assert s.name in deployments
        if s.role == "model":
            assert f"{s.name}-cache" in claims


def test_the_validator_is_strict() -> None:
    _, _, files = render()
    deployment = copy.deepcopy(objects(files, "Deployment")["api"])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}  # a typo Kubernetes would drop
    with pytest.raises(kubernetes_validate.ValidationError, match="readinessprobe"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def test_default_profile_matches_golden_files() -> None:
    _, _, files = render()
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        for old in GOLDEN.rglob("*.yaml"):
            old.unlink()
        for name, text in files.items():
            (GOLDEN / name).parent.mkdir(exist_ok=True)
            (GOLDEN / name).write_text(text)
    assert sorted(files) == sorted(p.relative_to(GOLDEN).as_posix() for p in GOLDEN.rglob("*.yaml"))
    for name, text in files.items():
        assert text == (GOLDEN / name).read_text(), f"{name} differs from tests/golden/kubernetes-default/{name}"


def test_the_config_map_holds_the_compose_targets_config() -> None:
    _, plan, files = render()
    config = objects(files, "ConfigMap")["api-config"]["data"]["config.yml"]
    assert config == render_plan(plan).files["config.yml"]
    api = container(files, "api")
    assert {"name": "config", "mountPath": "/config.yml", "subPath": "config.yml", "readOnly": True} in api[
        "volumeMounts"
    ]


def test_secrets_appear_only_in_the_secret_and_are_kept(tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    result = CliRunner().invoke(cli, ["render", "--target", "kubernetes", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE((out / SECRET_FILE).stat().st_mode) == 0o600
    first = previous_secrets(out)
    assert {"MASTER_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "QDRANT_API_KEY"} <= set(first)
    assert len(set(first.values())) == len(first) and all(len(v) >= 32 for v in first.values())
    for path in (p for p in out.rglob("*") if p.is_file()):
        if path.name != SECRET_FILE:
            assert stat.S_IMODE(path.stat().st_mode) == 0o644
            text = path.read_text()
            assert not [name for name, value in first.items() if value in text], f"a secret is in {path.name}"
    assert not [name for name, value in first.items() if value in result.output]
    # Kept across renders; one removed is generated again; one the operator added stays.
    text = (out / SECRET_FILE).read_text()
    text = re.sub(r'\n  "REDIS_PASSWORD": "[^"]*"', "", text) + '  "EXTRA": "kept"\n'
    (out / SECRET_FILE).write_text(text)
    assert CliRunner().invoke(cli, ["render", "--target", "kubernetes", "-o", str(out)]).exit_code == 0
    second = previous_secrets(out)
    assert second["EXTRA"] == "kept" and second["REDIS_PASSWORD"] != first["REDIS_PASSWORD"]
    assert {k: v for k, v in second.items() if k not in ("EXTRA", "REDIS_PASSWORD")} == {
        k: v for k, v in first.items() if k != "REDIS_PASSWORD"
    }
    assert stat.S_IMODE((out / SECRET_FILE).stat().st_mode) == 0o600


def test_every_secret_is_injected_from_a_secret_key() -> None:
    _, plan, files = render(profile=REPO / "profiles" / "cpu-dev.yaml")
    seen = {}
    for w in workloads(files).values():
        pod = w["spec"]["template"]["spec"]
        for c in pod.get("initContainers", []) + pod["containers"]:
            for e in c.get("env", []):
                if "valueFrom" in e:
                    ref = e["valueFrom"]["secretKeyRef"]
                    seen[ref["key"]] = (ref["name"], ref.get("optional", False))
                else:
                    assert "${" not in e["value"], e
    assert {k for k, (name, _) in seen.items() if name == "generated-secrets"} == set(plan.secrets)
    # The operator's variables: HF_TOKEN may be absent, an external model's key may not.
    assert {k: v for k, v in seen.items() if v[0] == "operator-secrets"} == {
        "HF_TOKEN": ("operator-secrets", True),
        "LLM_API_KEY": ("operator-secrets", False),
    }


def test_startup_probes_outlast_the_start_periods() -> None:
    for profile in PROFILES:
        _, plan, files = render(profile=profile)
        for s in plan.services:
            loaded = container(files, s.name)
            assert s.healthcheck is not None
            startup = loaded["startupProbe"]
            assert startup["failureThreshold"] * startup["periodSeconds"] >= s.healthcheck.start_period_s
            assert startup["periodSeconds"] == s.healthcheck.interval_s
            assert loaded["readinessProbe"] and loaded["livenessProbe"]


def test_open_health_endpoints_are_http_probes_and_the_rest_exec() -> None:
    _, _, files = render()
    assert container(files, "guillaumetell-7b")["startupProbe"]["httpGet"] == {"path": "/health", "port": 8000}
    assert container(files, "multilingual-e5-large")["readinessProbe"]["httpGet"] == {"path": "/health", "port": 80}
    assert container(files, "qdrant")["livenessProbe"]["httpGet"] == {"path": "/readyz", "port": 6333}
    assert container(files, "api")["livenessProbe"]["httpGet"] == {"path": "/openapi.json", "port": 8000}
    # whisper's /health needs the bearer key: the shell check of compose, the key from its env.
    whisper = container(files, "whisper-large-v3-turbo")["startupProbe"]["exec"]["command"]
    assert whisper[:2] == ["/bin/sh", "-c"] and 'Bearer $API_KEY"' in whisper[2]
    assert container(files, "redis")["readinessProbe"]["exec"]["command"][-1] == "redis-cli -e ping | grep -q PONG"
    assert container(files, "postgres")["livenessProbe"]["exec"]["command"][0] == "pg_isready"


@pytest.mark.parametrize("profile", ["default", "multi-gpu", "split"])
def test_gpu_requests_equal_limits_and_match_the_plan(profile: str) -> None:
    if profile == "split":
        data = {"gpus": {"count": 2, "name": "NVIDIA L4"},
                "models": [{"model": "AgentPublic/guillaumetell-7b", "gpus": 2, "max_model_len": 32768},
                           {"model": "intfloat/multilingual-e5-large", "gpus": "cpu"}]}  # fmt: skip
        _, plan, files = render(data)
    else:
        _, plan, files = render(profile=REPO / "profiles" / f"{profile}.yaml")
    gpu_pods = 0
    for s in plan.services:
        pod = workloads(files)[s.name]["spec"]["template"]["spec"]
        resources = pod["containers"][0]["resources"]
        planned = plan.placement.models.get(s.model or "")
        want = len(s.gpu.device_ids) or s.gpu.count if s.gpu else None
        assert resources["requests"].get("nvidia.com/gpu") == want
        assert resources.get("limits", {}).get("nvidia.com/gpu") == want
        assert {"cpu", "memory"} <= set(resources["requests"])
        taint = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        assert (taint in pod.get("tolerations", [])) == bool(want)
        if planned is not None and planned.server == "vllm":
            gpu_pods += 1
            args = pod["containers"][0]["args"]
            assert want == planned.tensor_parallel_size == (int(args[args.index("--tensor-parallel-size") + 1])
                                                            if "--tensor-parallel-size" in args else 1)  # fmt: skip
            # Whole GPUs: vLLM's own default share, not the plan's share of a GPU it shared on one host.
            assert "--gpu-memory-utilization" not in args
            assert args[args.index("--max-model-len") + 1] == str(planned.max_model_len)
    assert gpu_pods == 1


def test_profile_settings_reach_the_manifests() -> None:
    data = yaml.safe_load((REPO / "profiles" / "default.yaml").read_text())
    data["kubernetes"] = {
        "namespace": "albert-prod",
        "create_namespace": False,
        "storage_class": "fast-ssd",
        "cache_size": "120Gi",
        "database_size": "20Gi",
        "node_selector": {"pool": "albert"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "albert", "effect": "NoSchedule"}],
        "gpu_node_selector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        "gpu_tolerations": [],
    }
    _, _, files = render(data)
    assert "namespace.yaml" not in files
    assert all(d["metadata"]["namespace"] == "albert-prod" for d in documents(files))
    claim = objects(files, "PersistentVolumeClaim")["guillaumetell-7b-cache"]["spec"]
    assert claim["storageClassName"] == "fast-ssd" and claim["resources"]["requests"]["storage"] == "120Gi"
    redis = objects(files, "StatefulSet")["redis"]["spec"]
    assert redis["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert redis["template"]["spec"]["nodeSelector"] == {"pool": "albert"}
    llm = workloads(files)["guillaumetell-7b"]["spec"]["template"]["spec"]
    assert llm["nodeSelector"] == {"pool": "albert", "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert llm["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "albert", "effect": "NoSchedule"}]


def test_the_api_waits_for_its_models_and_databases() -> None:
    _, plan, files = render()
    pod = workloads(files)["api"]["spec"]["template"]["spec"]
    (wait,) = pod["initContainers"]
    assert wait["image"] == container(files, "api")["image"]  # nothing more to pull
    env = {e["name"]: e for e in wait["env"]}
    targets = {t["name"]: t for t in yaml.safe_load(env["WAIT_FOR"]["value"])}
    assert set(targets) == {s.name for s in plan.services if s.role != "api"}
    assert targets["guillaumetell-7b"]["url"] == "http://guillaumetell-7b:8000/health"
    assert targets["redis"] == {"name": "redis", "host": "redis", "port": 6379}
    key = targets["whisper-large-v3-turbo"]["key"]
    assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "generated-secrets", "key": key}
    compile(wait["command"][2], "wait", "exec")  # the script is valid Python


def test_literal_text_survives_kubernetes_expansion() -> None:
    hostile = "a: b # c \"d\" 'e' {f} [g] $h ${i} $${j} $(k) $$(l) $( \\m $"
    data = {
        "models": [
            {"model": "intfloat/multilingual-e5-large", "gpus": "cpu"},
            {"model": "AgentPublic/guillaumetell-7b", "gpus": 1, "env": {"HOSTILE": hostile},
             "args": ["--note", hostile], "served_model_name": "org/model $(x)"},
        ],
    }  # fmt: skip
    files = render(data)[2]
    server = container(files, "guillaumetell-7b")
    env = {e["name"]: e.get("value") for e in server["env"]}
    assert kubernetes_expand(env["HOSTILE"], {"k": "NO", "HOSTILE": "NO"}) == hostile
    assert kubernetes_expand(server["args"][-1], {"k": "NO"}) == hostile
    assert kubernetes_expand(server["args"][server["args"].index("--served-model-name") + 1], {"x": "NO"}) == (
        "org/model $(x)"
    )
    # A secret inside a value is read from a variable defined before it.
    redis = container(files, "redis")["env"]
    names = [e["name"] for e in redis]
    assert redis[names.index("REDIS_ARGS")]["value"] == "--requirepass $(REDIS_PASSWORD)"
    assert names.index("REDIS_PASSWORD") < names.index("REDIS_ARGS")
    assert escape("plain $VAR text") == "plain $VAR text"


def test_names_kubernetes_refuses_become_service_names_in_the_config() -> None:
    data = {"models": [{"model": "intfloat/multilingual-e5-large", "name": "e5.large_v2", "gpus": "cpu"}]}
    _, _, files = render(data)
    assert "e5-large-v2" in objects(files, "Service")
    config = yaml.safe_load(objects(files, "ConfigMap")["api-config"]["data"]["config.yml"])
    (model,) = config["models"]
    assert model["id"] == "e5.large_v2"  # clients keep the profile's name
    assert model["clients"][0]["args"]["api_url"] == "http://e5-large-v2:80"
    data["models"].append({"model": "BAAI/bge-reranker-v2-m3", "name": "e5-large.v2", "gpus": "cpu"})
    # The profile refuses them first: both names would also share one API-key variable.
    with pytest.raises(ProfileError, match=re.escape("'e5-large.v2' and 'e5.large_v2' (models.0) would both read")):
        render(data)


def test_render_target_kubernetes_on_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, ["render", "--target", "kubernetes", "-o", "k8s"])
    assert result.exit_code == 0, result.output
    assert sorted(p.relative_to("k8s").as_posix() for p in Path("k8s").rglob("*.yaml")) == sorted(
        ["data/namespace.yaml", "secret.yaml", "app/configmap.yaml", "data/persistentvolumeclaims.yaml",
         "app/deployments.yaml", "app/statefulsets.yaml", "app/services.yaml", "app/kustomization.yaml",
         "data/kustomization.yaml"]
    )  # fmt: skip
    # The namespace exists before anything is created in it: data/ first, the stack last.
    steps = [line.split(". ", 1)[1] for line in result.stdout.splitlines() if re.match(r"^  \d\. kubectl", line)]
    out = str(Path("k8s").resolve())
    assert [s.split("   #")[0] for s in steps] == [
        f"kubectl apply -k {out}/data",
        f"kubectl apply -f {out}/secret.yaml",
        "kubectl -n albert create secret generic operator-secrets --from-literal=HF_TOKEN=...",
        f"kubectl apply -k {out}/app",
    ]
    assert result.stdout.count(" Deployment ") == 5 and result.stdout.count(" StatefulSet ") == 3
    # The compose output is its own directory.
    assert runner.invoke(cli, ["render", "-o", "compose"]).exit_code == 0
    refused = runner.invoke(cli, ["render", "--target", "kubernetes", "-o", "compose"])
    assert refused.exit_code == 1
    assert "holds a Docker Compose rendering" in refused.stderr
    bad = runner.invoke(cli, ["render", "--target", "helm"])
    assert bad.exit_code == 2
    assert "'helm' is not one of 'compose', 'kubernetes'" in bad.stderr


def test_an_unreadable_previous_secret_stops_the_render(tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    commands.render(None, out, target="kubernetes")
    (out / SECRET_FILE).write_text("stringData: [unclosed\n")
    before = {p: p.read_text() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(RenderError, match=r"cannot read the secrets kept there .* restore it from"):
        commands.render(None, out, target="kubernetes")
    assert {p: p.read_text() for p in out.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"namespace": "Albert_NS"}, "kubernetes.namespace: 'Albert_NS' is not a Kubernetes namespace name"),
        ({"cache_size": "50GB"}, "kubernetes.cache_size: '50GB' is not a Kubernetes size: write it like 50Gi"),
        ({"node_selector": {"gpu": True}}, 'kubernetes.node_selector: the value of gpu must be text: quote it (gpu: "true")'),
        ({"gpu_tolerations": [{"operator": "Exists", "value": "x"}]},
         "kubernetes.gpu_tolerations.0.value: a toleration with operator Exists takes no value"),
        ({"tolerations": [{"key": "a", "tolerationSeconds": 60}]},
         "kubernetes.tolerations.0.tolerationSeconds: only tolerations with effect NoExecute take tolerationSeconds"),
        ({"storage_clas": "x"}, "kubernetes: unknown key 'storage_clas': did you mean 'storage_class'?"),
    ],
)  # fmt: skip
def test_bad_kubernetes_settings_are_refused_clearly(settings: dict[str, Any], message: str) -> None:
    data = {"kubernetes": settings, "models": [{"model": "intfloat/multilingual-e5-large", "gpus": "cpu"}]}
    with pytest.raises(ProfileError) as err:
        validate_profile(data, "p.yaml")
    assert str(err.value).startswith(f"p.yaml: {message}")


def test_kubectl_delete_k_of_the_stack_keeps_the_namespace_and_every_volume() -> None:
    """`kubectl delete -k app/` deletes exactly what app/ lists: neither the Namespace (whose deletion
    would take every claim with it) nor a claim may be there; databases' claims come from
    volumeClaimTemplates, which a StatefulSet's deletion keeps (retention policy Retain, the default)."""
    _, _, files = render()
    app = {n: t for n, t in files.items() if n.startswith("app/") and not n.endswith("kustomization.yaml")}
    kinds = {d["kind"] for d in documents(app)}
    assert kinds.isdisjoint({"Namespace", "PersistentVolumeClaim", "Secret"}), kinds
    data = {d["kind"] for d in documents({n: t for n, t in files.items() if n.startswith("data/")})}
    assert data == {"Namespace", "PersistentVolumeClaim"}
    for s in objects(files, "StatefulSet").values():
        policy = s["spec"].get("persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain"})
        assert policy["whenDeleted"] == "Retain"


def test_the_generated_secret_is_outside_the_directory_to_commit() -> None:
    _, plan, files = render()
    secrets = fixed_secrets(plan)
    assert [d["kind"] for d in documents({"secret.yaml": files["secret.yaml"]})] == ["Secret"]
    for name, text in files.items():
        if name != "secret.yaml":
            assert "/" in name, f"{name} would sit beside the secret"
            assert not [k for k, v in secrets.items() if v in text], f"a secret is in {name}"


def test_the_api_is_replaced_not_rolled_so_one_pod_runs_the_migrations() -> None:
    _, _, files = render()
    for name, deployment in objects(files, "Deployment").items():
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}, name


def test_an_offline_020_stack_is_refused_on_kubernetes_with_what_to_do(tmp_path: Path) -> None:
    """0.2.0 reads tiktoken's o200k_base file (about 3.6 MB) at start; a ConfigMap holds 1 MiB at most."""
    data = yaml.safe_load((REPO / "profiles" / "default.yaml").read_text())
    with pytest.raises(RenderError, match=r"offline: release 0.2.0 reads the tiktoken o200k_base encoding"):
        render({**data, "offline": True})
    profile = tmp_path / "offline.yaml"
    profile.write_text(yaml.safe_dump({**data, "offline": True}))
    result = CliRunner().invoke(cli, ["render", str(profile), "--target", "kubernetes", "-o", str(tmp_path / "k8s")])
    assert result.exit_code == 1, result.output
    assert "(about 3.6 MB)" in result.stderr and "a ConfigMap holds at most 1 MiB" in result.stderr
    assert "render with --target compose" in result.stderr and "or set offline: false" in result.stderr
    assert not (tmp_path / "k8s").exists()  # nothing written
    # The same profile renders for compose, and online for Kubernetes; 0.0.3 reads no such file.
    assert CliRunner().invoke(cli, ["render", str(profile), "-o", str(tmp_path / "compose")]).exit_code == 0
    render(data)
    render({**yaml.safe_load((REPO / "profiles" / "api-0.0.3.yaml").read_text()), "offline": True})
