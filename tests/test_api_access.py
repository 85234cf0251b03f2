"""Release 0.0.3 lets anyone in: it is never published beyond loopback (nor on Kubernetes) unless the
profile says so in exact words, and `status` and RUNBOOK.md say that it has no authentication."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from albert_deploy.converge import apply, engine, stackops
from albert_deploy.errors import ProfileError
from albert_deploy.plan.access import ACKNOWLEDGEMENT
from albert_deploy.plan.build import Plan, build_plan
from albert_deploy.profile.load import validate_profile
from albert_deploy.render.files import render_plan
from albert_deploy.render.kubernetes.render import render_kubernetes
from albert_deploy.views import status_text

from .helpers import REPO

LEGACY = REPO / "profiles" / "api-0.0.3.yaml"


def plan_of(path: Path = LEGACY, **api: Any) -> Plan:
    data = yaml.safe_load(path.read_text())
    data.setdefault("api", {}).update(api)
    return build_plan(validate_profile(data, "p.yaml"), "p.yaml")


@pytest.mark.parametrize("bind", ["0.0.0.0", "192.168.1.10", "::"])
def test_an_open_api_beyond_loopback_is_refused_with_the_words_to_write(bind: str) -> None:
    with pytest.raises(ProfileError) as err:
        plan_of(bind=bind)
    message = str(err.value)
    assert message.startswith("p.yaml: api.bind: release 0.0.3 has no authentication")
    assert f'allow_unauthenticated_access: "{ACKNOWLEDGEMENT}"' in message and "127.0.0.1" in message


def test_the_exact_words_publish_it_and_anything_else_is_refused() -> None:
    plan = plan_of(bind="0.0.0.0", allow_unauthenticated_access=ACKNOWLEDGEMENT)
    assert plan.api_access.authenticated is False and plan.api_access.acknowledged
    assert plan.api_access.warning() is not None and "0.0.0.0" in (plan.api_access.warning() or "")
    with pytest.raises(ProfileError, match=r"api\.allow_unauthenticated_access: write exactly"):
        plan_of(bind="0.0.0.0", allow_unauthenticated_access="yes")


def test_loopback_and_an_authenticating_release_need_no_words() -> None:
    assert plan_of(bind="127.0.0.1").api_access.authenticated is False
    assert plan_of(bind="::1").api_access.loopback_only
    secured = plan_of(REPO / "profiles" / "default.yaml", bind="0.0.0.0")
    assert secured.api_access.authenticated and secured.api_access.warning() is None


def test_kubernetes_refuses_an_open_api_unless_told() -> None:
    with pytest.raises(ProfileError, match=r"api\.release: 0\.0\.3 has no authentication .* every pod"):
        render_kubernetes(plan_of())
    assert render_kubernetes(plan_of(allow_unauthenticated_access=ACKNOWLEDGEMENT)).files


def test_the_runbook_says_the_api_has_no_authentication() -> None:
    runbook = render_plan(plan_of()).files["RUNBOOK.md"]
    assert "The API has no authentication" in runbook and "Bearer <master key>" not in runbook
    secured = render_plan(plan_of(REPO / "profiles" / "default.yaml")).files["RUNBOOK.md"]
    assert "no authentication" not in secured and "Bearer <master key>" in secured


def test_status_says_the_api_has_no_authentication(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(engine, "connect", lambda: None)
    monkeypatch.setattr(stackops, "status", lambda *args: [])
    result = apply.status("albert-legacy", apply.prepare(plan_of(), tmp_path, write=False))
    assert result["api_authenticated"] is False
    assert "no authentication" in result["api_warning"] and "this host only" in result["api_warning"]
    assert result["api_warning"] in status_text(result)
    secured = apply.status("albert", apply.prepare(plan_of(REPO / "profiles" / "default.yaml"), tmp_path, write=False))
    assert secured["api_authenticated"] is True and secured["api_warning"] is None
