"""UI smoke test: the real dagster-webserver loads workspace.yaml; its GraphQL API lists every asset and check."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from lmrec_assets.definitions import defs

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

QUERY = """
{
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
  }
  assetNodes {
    assetKey { path }
    groupName
    description
    kinds
    owners { ... on TeamAssetOwner { team } ... on UserAssetOwner { email } }
    assetChecksOrError { ... on AssetChecks { checks { name } } }
  }
}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def webserver(tmp_path_factory):
    port = free_port()
    env = os.environ | {"DAGSTER_HOME": str(tmp_path_factory.mktemp("dagster_home"))}
    process = subprocess.Popen(
        [Path(sys.executable).parent / "dagster-webserver", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"dagster-webserver exited early: {process.stderr.read()[-2000:]}")
        try:
            if requests.get(f"{url}/server_info", timeout=2).ok:
                break
        except requests.ConnectionError:
            time.sleep(1)
    else:
        process.kill()
        pytest.fail("dagster-webserver did not answer within 120 s")
    yield url
    process.terminate()
    process.wait(timeout=30)


def test_code_location_loads_every_asset_and_check(webserver):
    response = requests.post(f"{webserver}/graphql", json={"query": QUERY}, timeout=60)
    response.raise_for_status()
    data = response.json()["data"]
    (location,) = data["workspaceOrError"]["locationEntries"]
    assert location["name"] == "lmrec"
    assert location["locationOrLoadError"]["__typename"] == "RepositoryLocation", location

    nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    expected = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert expected <= set(nodes)
    groups = {n["groupName"] for n in nodes.values()}
    assert {"ingestion", "features", "models", "recommendations", "evaluation"} <= groups
    materializable = [n for key, n in nodes.items() if key in expected]
    assert all(n["description"] and n["kinds"] and n["owners"] for n in materializable), [
        key for key, n in nodes.items() if key in expected and not (n["description"] and n["kinds"] and n["owners"])
    ]
    served_checks = sum(len(n["assetChecksOrError"].get("checks", [])) for n in nodes.values())
    expected_checks = len(list(defs.resolve_asset_graph().asset_check_keys))
    assert served_checks == expected_checks > 20
