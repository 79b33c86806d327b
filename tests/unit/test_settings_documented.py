"""Every mcpd setting has help text and is listed in docs/configuration.md."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mcpctl.mcpd.settings import Settings
from mcpctl.mcplocal.settings import GatewaySettings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_has_help_text_and_a_row_in_the_docs(name: str) -> None:
    field = Settings.model_fields[name]
    assert field.description, f"setting {name} has no description"
    text = DOC.read_text()
    assert f"`{name}`" in text and f"`MCPD_{name.upper()}`" in text


@pytest.mark.parametrize("name", sorted(GatewaySettings.model_fields))
def test_every_gateway_setting_has_help_text_and_a_row_in_the_docs(name: str) -> None:
    field = GatewaySettings.model_fields[name]
    assert field.description, f"setting {name} has no description"
    text = DOC.read_text()
    assert f"`{name}`" in text and f"`MCPLOCAL_{name.upper()}`" in text


def test_flags_win_over_environment_which_wins_over_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "mcpd.yaml"
    config.write_text("port: 4100\nhost: 0.0.0.0\nlog_level: warning\n")
    monkeypatch.setenv("MCPD_CONFIG_FILE", str(config))
    monkeypatch.setenv("MCPD_PORT", "4200")
    settings = Settings(log_level="error")
    assert (settings.host, settings.port, settings.log_level) == ("0.0.0.0", 4200, "error")


def test_bad_settings_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCPD_SESSION_TTL", "forever")
    with pytest.raises(ValidationError):
        Settings()
