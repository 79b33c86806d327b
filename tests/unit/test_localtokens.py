"""The client machine's token store (`~/.mcpctl/tokens/<mcpd>/<project>/<name>`): a token that still works is
reused, one mcpd refuses is replaced, a lost file's token is rotated, files are 0600 in 0700 dirs."""

from __future__ import annotations

import stat
from pathlib import Path

import click
import httpx
import pytest

from mcpctl.cli.client import ApiClient
from mcpctl.cli.errors import CliError
from mcpctl.cli.localtokens import Login, provision, token_file, tokens_dir
from tests.unit.test_cli_config_claude import ME, FakeMcpd

CONFIG = Path("home/.mcpctl/config.yaml")


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def provisioned(
    mcpd: FakeMcpd, *, rotate: bool = False, name: str = "t", url: str = "http://mcpd.test"
) -> tuple[str, Path, str]:
    client = ApiClient(url, "session-token", transport=httpx.MockTransport(mcpd))
    local = provision(
        client,
        CONFIG,
        "monitoring",
        name,
        login=Login("alice", ME),
        ttl=None,
        description="test",
        rotate=rotate,
    )
    return local.token, local.path, local.outcome


def test_tokens_live_beside_the_cli_config_file() -> None:
    assert tokens_dir(Path("/x/.mcpctl/config.yaml")) == Path("/x/.mcpctl/tokens")
    assert token_file(Path("/x/c.yaml"), "http://127.0.0.1:3000", "p", "n") == Path(
        "/x/tokens/127-0-0-1-3000/p/n"
    )
    assert (
        token_file(Path("/x/c.yaml"), "https://mcp.example.com/", "p", "n").parent.parent.name
        == "mcp-example-com-443"
    )


def test_a_new_token_is_written_0600_in_0700_directories_with_no_temp_file_left() -> None:
    mcpd = FakeMcpd()
    token, path, outcome = provisioned(mcpd)
    assert outcome == "created" and token == mcpd.active["t"]
    assert path == Path("home/.mcpctl/tokens/mcpd-test-80/monitoring/t")
    assert path.read_text() == token + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for directory in (path.parent, path.parent.parent, path.parent.parent.parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["t"]
    assert mcpd.bodies[0]["rbac"] == "empty" and mcpd.bodies[0]["writeFile"] is False


def test_a_working_token_is_reused_without_asking_for_a_new_one() -> None:
    mcpd = FakeMcpd()
    first, _, _ = provisioned(mcpd)
    again, _, outcome = provisioned(mcpd)
    assert (again, outcome) == (first, "reused")
    assert len(mcpd.bodies) == 1


def test_a_reused_file_others_could_read_is_made_private_again() -> None:
    mcpd = FakeMcpd()
    _, path, _ = provisioned(mcpd)
    path.chmod(0o644)
    provisioned(mcpd)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_rotate_revokes_the_working_token_and_writes_a_new_one() -> None:
    mcpd = FakeMcpd()
    first, path, _ = provisioned(mcpd)
    second, _, outcome = provisioned(mcpd, rotate=True)
    assert outcome == "rotated" and second != first
    assert mcpd.revoked == [first]
    assert path.read_text().strip() == second


def test_a_lost_file_rotates_the_active_token_of_that_name_instead_of_failing() -> None:
    mcpd = FakeMcpd()
    first, path, _ = provisioned(mcpd)
    path.unlink()
    second, _, outcome = provisioned(mcpd)
    assert outcome == "rotated" and mcpd.revoked == [first] and path.read_text().strip() == second


@pytest.mark.parametrize("content", ["", "not a token\n"])
def test_a_file_without_a_token_is_replaced(content: str) -> None:
    mcpd = FakeMcpd()
    path = token_file(CONFIG, "http://mcpd.test", "monitoring", "t")
    path.parent.mkdir(parents=True)
    path.write_text(content)
    token, _, outcome = provisioned(mcpd)
    assert outcome == "created" and path.read_text().strip() == token


def test_an_active_token_of_that_name_owned_by_another_user_is_never_rotated() -> None:
    mcpd = FakeMcpd()
    theirs, path, _ = provisioned(mcpd)
    path.unlink()
    mcpd.owners["t"] = "bob@example.com"
    with pytest.raises(CliError, match=r"belongs to bob@example\.com"):
        provisioned(mcpd)
    assert mcpd.revoked == [] and mcpd.active["t"] == theirs and not path.exists()


# security review of the store (each failed on the first version of it)


def test_two_mcpds_with_a_project_of_the_same_name_never_see_each_others_token() -> None:
    prod, dev = FakeMcpd(), FakeMcpd()
    prod_token, prod_path, _ = provisioned(prod, url="https://prod.example.com")
    dev_token, dev_path, outcome = provisioned(dev, url="http://127.0.0.1:3000")
    assert outcome == "created" and dev_path != prod_path
    assert prod_token not in dev.introspected
    assert prod_path.read_text().strip() == prod_token and dev_path.read_text().strip() == dev_token


def test_a_working_token_someone_else_owns_is_not_used() -> None:
    # e.g. planted in a shared directory: using it would make the CLI act as its owner
    mcpd = FakeMcpd()
    planted, path, _ = provisioned(mcpd)
    mcpd.owners["t"] = "mallory@example.com"
    mcpd.introspect_owner = "mallory@example.com"
    with pytest.raises(CliError, match="belongs to mallory"):
        provisioned(mcpd)  # theirs is never reused and never rotated away
    assert path.read_text().strip() == planted


@pytest.mark.parametrize("mode", [0o770, 0o777])
def test_a_token_directory_others_may_write_is_refused(mode: int) -> None:
    mcpd = FakeMcpd()
    _, path, _ = provisioned(mcpd)
    path.parent.chmod(mode)
    with pytest.raises(CliError, match="refusing to keep tokens"):
        provisioned(mcpd)


def test_a_symbolic_link_in_place_of_the_token_file_is_never_read_through(tmp_path: Path) -> None:
    mcpd = FakeMcpd()
    _, path, _ = provisioned(mcpd)
    elsewhere = tmp_path / "planted"
    elsewhere.write_text(path.read_text())
    path.unlink()
    path.symlink_to(elsewhere)
    with pytest.raises(CliError, match="symbolic link"):
        provisioned(mcpd)


def test_a_name_that_is_not_a_dns_label_makes_no_path() -> None:
    with pytest.raises(click.UsageError, match="project"):
        token_file(CONFIG, "http://mcpd.test", "../../etc", "t")
