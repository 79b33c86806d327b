"""Spawning ahead: a starting mcpd spawns the stdio servers it ran last time before it imports the
rest of itself, so that they boot while it does (cold start, docs/performance.md).

The supervisor writes what it runs to `<dataDir>/launch-plan` whenever that changes: the database
it runs from, and each stdio server's command, args, env (secretRefs resolved), cwd and replica
count, as one token encrypted with mcpd's secret key (the key of the secrets in the database), 0600.
A starting mcpd reads it first thing, ends what a killed predecessor left running (GroupLedger),
spawns every planned replica and hands the links over (`Prelaunched`). The supervisor's first
reconcile takes a link only for the replica whose launch, as the database now says, is exactly the
planned one (same server and index; the same command, args, env and cwd, compared field by field,
not trusted from the plan), and `close_rest` ends the others: the database stays the truth; a stale
plan costs a process started and stopped. A plan written for another database is not followed, and
a plan is followed once: it is removed when read (the first reconcile writes it again) and when mcpd
starts without supervising (the API may change servers meanwhile).

SIGTERM while mcpd starts stops what was spawned ahead (`mcpd/__main__.py`); SIGKILL takes it along
(PR_SET_PDEATHSIG, links.py), and its groups are in the ledger for the next mcpd to reap.

Only without leases (SQLite, one mcpd per data dir): when replicas share PostgreSQL, which servers
this mcpd runs is not known until it holds their leases, so no plan is written (and an old one is
removed). An unreadable plan (another key, a damaged file) is ignored: the supervisor spawns as
usual. Nothing here imports the web framework, the SDK or the database layer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from mcpctl.mcpd.files import write_private_file
from mcpctl.mcpd.supervisor.groups import GroupLedger
from mcpctl.mcpd.supervisor.links import Link, SpawnError, StdioLink
from mcpctl.mcpd.supervisor.ring import LineRing

logger = logging.getLogger(__name__)

PLAN_FILE = "launch-plan"
_VERSION = 1


class Cipher(Protocol):
    def encrypt(self, plaintext: bytes) -> bytes: ...

    def decrypt(self, token: bytes) -> bytes: ...


class Launch(Protocol):
    """What the plan needs of a server's config (supervisor.instance.ServerConfig, frozen)."""

    @property
    def name(self) -> str: ...
    @property
    def transport(self) -> str: ...
    @property
    def command(self) -> str | None: ...
    @property
    def args(self) -> tuple[str, ...]: ...
    @property
    def env(self) -> dict[str, str]: ...
    @property
    def cwd(self) -> str | None: ...
    @property
    def replicas(self) -> int: ...
    @property
    def error(self) -> str | None: ...


def _planned(config: Launch) -> bool:
    return (
        config.transport == "stdio" and bool(config.command) and config.error is None and config.replicas > 0
    )


_LAUNCH_FIELDS = ("command", "args", "env", "cwd")  # what a spawn runs: what a planned link is compared on


def _launch(config: Launch) -> dict[str, Any]:
    return {"command": config.command, "args": list(config.args), "env": dict(config.env), "cwd": config.cwd}


def remove_plan(data_dir: Path) -> None:
    """No plan to follow at the next start (a warning when it cannot be removed)."""
    path = data_dir / PLAN_FILE
    try:
        path.unlink(missing_ok=True)
    except OSError:
        logger.warning("could not remove the launch plan %s", path, exc_info=True)


def plan_text(database: str, configs: Iterable[Launch]) -> str:
    """The plan of these configs: the stdio servers that can start, in name order."""
    servers = [
        {"name": c.name, "replicas": c.replicas, **_launch(c)}
        for c in sorted(configs, key=lambda c: c.name)
        if _planned(c)
    ]
    return json.dumps({"version": _VERSION, "database": database, "servers": servers}, sort_keys=True)


class PlanWriter:
    """Keeps `<dataDir>/launch-plan` equal to what the supervisor runs (rewritten on change only)."""

    def __init__(self, data_dir: Path, database: str, cipher: Cipher):
        self.data_dir = data_dir
        self.path = data_dir / PLAN_FILE
        self.database = database
        self.cipher = cipher
        self._written: str | None = None

    def write(self, configs: Iterable[Launch]) -> None:
        text = plan_text(self.database, configs)
        if text == self._written:
            return
        try:
            write_private_file(self.path, self.cipher.encrypt(text.encode()).decode())
        except OSError:
            logger.warning("could not write the launch plan %s", self.path, exc_info=True)
            self.remove()  # an old plan would be followed, though the next start does not need it
            return
        self._written = text

    def remove(self) -> None:
        self._written = None
        remove_plan(self.data_dir)


def read_plan(data_dir: Path, database: str, cipher: Cipher) -> list[dict[str, Any]]:
    """The planned servers, or none when there is no plan, it cannot be read or it was written for
    another database."""
    path = data_dir / PLAN_FILE
    try:
        token = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError:
        logger.warning("ignoring unreadable launch plan %s", path, exc_info=True)
        return []
    try:
        plan = json.loads(cipher.decrypt(token.strip()))
        if plan.get("version") != _VERSION or plan.get("database") != database:
            return []
        return [
            {
                "name": str(s["name"]),
                "command": str(s["command"]),
                "args": [str(a) for a in s["args"]],
                "env": {str(k): str(v) for k, v in s["env"].items()},
                "cwd": None if s["cwd"] is None else str(s["cwd"]),
                "replicas": int(s["replicas"]),
            }
            for s in plan["servers"]
        ]
    except Exception:  # boundary: a plan is only a head start; without it the supervisor spawns
        logger.warning("ignoring the launch plan %s: it cannot be read with this secret key", path)
        return []


class Prelaunched:
    """The links spawned ahead from the plan, until the supervisor takes them or they are closed."""

    def __init__(self, groups: GroupLedger):
        self.groups = groups
        # (server, replica index) -> (what was spawned: _launch's fields, the link)
        self._links: dict[tuple[str, int], tuple[dict[str, Any], StdioLink]] = {}

    @classmethod
    async def launch(
        cls, data_dir: Path, database: str, cipher: Cipher, *, grace_seconds: float
    ) -> Prelaunched:
        """End the groups a previous mcpd of this data dir left (before anything is spawned), then
        spawn every planned replica."""
        groups = GroupLedger(data_dir)
        groups.reap_leftovers()
        ahead = cls(groups)
        plan = read_plan(data_dir, database, cipher)
        # followed once: the first reconcile writes what runs now (a stale plan is not followed twice)
        remove_plan(data_dir)
        try:
            await ahead._spawn(plan, grace_seconds)
        except BaseException:  # cancelled (SIGTERM, Ctrl-C) while spawning: nothing is left behind
            await ahead.close_rest()
            raise
        return ahead

    async def _spawn(self, plan: list[dict[str, Any]], grace_seconds: float) -> None:
        for server in plan:
            launch = {key: server[key] for key in _LAUNCH_FIELDS}
            for index in range(server["replicas"]):
                try:
                    link = await StdioLink.open(
                        server["command"],
                        server["args"],
                        server["env"],
                        server["cwd"],
                        stderr=LineRing(),
                        grace_seconds=grace_seconds,
                        groups=self.groups,
                    )
                except SpawnError as exc:
                    logger.info("launch plan: %s-%d not spawned ahead: %s", server["name"], index, exc)
                    continue
                except Exception:  # boundary: the supervisor spawns it; what was spawned is kept
                    logger.warning(
                        "launch plan: %s-%d not spawned ahead", server["name"], index, exc_info=True
                    )
                    continue
                self._links[(server["name"], index)] = (launch, link)
                logger.info(
                    "launch plan: %s-%d spawned ahead of startup: pid %s", server["name"], index, link.pid
                )

    def take_all(self, config: Launch) -> dict[int, Link]:
        """The links spawned for this server's replicas (by index) that run exactly what the config
        now says; the others stay for `close_rest`."""
        if not _planned(config):
            return {}
        launch = _launch(config)
        taken: dict[int, Link] = {}
        for index in range(config.replicas):
            found = self._links.get((config.name, index))
            if found is not None and found[0] == launch:
                taken[index] = self._links.pop((config.name, index))[1]
        return taken

    async def close_rest(self) -> None:
        """End the links no replica took (a server removed or changed since the plan, or mcpd
        stopping before its supervisor took them). Idempotent."""
        rest = [link for _, link in self._links.values()]
        self._links.clear()
        if rest:
            logger.info("stopping %d instance(s) spawned ahead that no replica took", len(rest))
        try:
            await asyncio.gather(*(link.close() for link in rest))
        except BaseException:  # cancelled before every close ran: no group may outlive this
            for link in rest:
                link.kill()
            raise
