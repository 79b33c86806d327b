"""Shell completion scripts are printed without talking to mcpd."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import Cli, Nowhere

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_a_script_for_the_shell(tmp_path: Path, shell: str) -> None:
    cli = Cli(Nowhere(), tmp_path / "config.yaml")

    result = cli("completion", shell)

    assert result.returncode == 0, result.stderr
    assert "mcpctl" in result.stdout
    assert "_MCPCTL_COMPLETE" in result.stdout
