"""The client, the CLI and /metrics on a server with keys: the key goes as a Bearer token, refusals say why."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from app import client as lc
from app.cli import cli
from app.commands.common import ExitCode
from tests.conftest import Service, free_port
from tests.security.conftest import run_cli


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, str]]:
    var_dir = tmp_path_factory.mktemp("keyed") / "var"
    created = run_cli(var_dir, "keys", "create", "--scope", "read", "--name", "reader")
    assert created.returncode == 0, created.stderr
    running = Service(var_dir=var_dir, port=free_port())
    running.start("api", "api", "--port", str(running.port))
    running.wait_healthy()
    yield running, created.stdout.strip()
    running.close()


def test_client_sends_the_key_and_raises_the_refusals(keyed: tuple[Service, str]) -> None:
    service, token = keyed
    with lc.Client(service.url, api_key=token) as reader:
        assert reader.list_models() == []
        with pytest.raises(lc.Forbidden) as forbidden:
            reader.create_model("nope", {"kind": "mlp", "input_shape": [4], "hidden": [4]})
        assert forbidden.value.status_code == 403 and "write" in forbidden.value.message
    with lc.Client(service.url, api_key="") as anonymous, pytest.raises(lc.Unauthorized) as refused:
        anonymous.list_models()
    assert refused.value.status_code == 401 and "Bearer" in refused.value.message


def test_cli_api_key_option_and_exit_code(keyed: tuple[Service, str], tmp_path: Path) -> None:
    service, token = keyed
    runner = CliRunner()
    allowed = runner.invoke(cli, ["--url", service.url, "--api-key", token, "models", "list", "--json"])
    assert allowed.exit_code == 0 and allowed.stdout.strip() == "[]"
    refused = runner.invoke(cli, ["--url", service.url, "models", "list"], env={"LIFELONG_API_KEY": ""})
    assert refused.exit_code == ExitCode.HTTP_ERROR and "401" in refused.stderr and "Bearer" in refused.stderr


def test_metrics_need_a_read_key_once_keys_exist(keyed: tuple[Service, str]) -> None:
    service, token = keyed
    assert httpx.get(f"{service.url}/metrics").status_code == 401
    scraped = httpx.get(f"{service.url}/metrics", headers={"Authorization": f"Bearer {token}"})
    assert scraped.status_code == 200 and "lifelong_http_requests_total" in scraped.text
    assert httpx.get(f"{service.url}/dashboard").status_code == 200  # the page is public; its data is not
