"""mcplocal's documented environment names (DESIGN §8: `MCPLOCAL_HTTP_HOST`, `MCPLOCAL_HTTP_PORT`;
DESIGN §4: `MCPLOCAL_MCPD_URL`) and the older or CLI names kept as aliases; flags win over both."""

from __future__ import annotations

import pytest

from mcpctl.mcplocal.settings import GatewaySettings


@pytest.fixture(autouse=True)
def _no_inherited_names(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "MCPLOCAL_HTTP_HOST",
        "MCPLOCAL_HTTP_PORT",
        "MCPLOCAL_HOST",
        "MCPLOCAL_PORT",
        "MCPLOCAL_MCPD_URL",
        "MCPCTL_MCPD_URL",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("prefix", ["MCPLOCAL_HTTP_", "MCPLOCAL_"])
def test_the_listen_address_is_read_from_the_documented_names_and_the_old_ones(
    monkeypatch: pytest.MonkeyPatch, prefix: str
) -> None:
    monkeypatch.setenv(prefix + "HOST", "0.0.0.0")
    monkeypatch.setenv(prefix + "PORT", "4321")
    settings = GatewaySettings()
    assert (settings.host, settings.port) == ("0.0.0.0", 4321)


def test_the_documented_listen_names_win_over_the_old_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCPLOCAL_HTTP_PORT", "4001")
    monkeypatch.setenv("MCPLOCAL_PORT", "4002")
    assert GatewaySettings().port == 4001


@pytest.mark.parametrize("name", ["MCPLOCAL_MCPD_URL", "MCPCTL_MCPD_URL"])
def test_the_mcpd_url_is_read_from_mcplocals_name_and_the_clis(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "http://127.0.0.1:4999")
    assert GatewaySettings().mcpd_url == "http://127.0.0.1:4999"


def test_mcplocals_own_mcpd_url_wins_over_the_clis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCPCTL_MCPD_URL", "http://cli:1")
    monkeypatch.setenv("MCPLOCAL_MCPD_URL", "http://mcplocal:2")
    assert GatewaySettings().mcpd_url == "http://mcplocal:2"


def test_flags_win_over_every_environment_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCPLOCAL_HTTP_PORT", "4001")
    monkeypatch.setenv("MCPLOCAL_MCPD_URL", "http://env:1")
    settings = GatewaySettings(port=4100, host="::1", mcpd_url="http://flag:2")
    assert (settings.port, settings.host, settings.mcpd_url) == (4100, "::1", "http://flag:2")
