"""The proxy-model surface built from mcplocal's settings: the pipeline cache on disk, the
OpenAI-compatible chat and embeddings clients when configured, the ranker and the stages."""

from __future__ import annotations

from pathlib import Path

from mcpctl.mcplocal.filecache import FileCache
from mcpctl.mcplocal.llm import clients_from
from mcpctl.mcplocal.proxy.gate import Gate
from mcpctl.mcplocal.proxy.pipeline import ContentPipeline
from mcpctl.mcplocal.proxy.ranking import ToolRanker
from mcpctl.mcplocal.proxy.surface import Surface
from mcpctl.mcplocal.router import Router
from mcpctl.mcplocal.settings import GatewaySettings

DEFAULT_CACHE_DIR = Path("~/.cache/mcpctl/pipeline")


def surface_for(
    router: Router, settings: GatewaySettings, *, default_cache_dir: Path | None = None
) -> Surface:
    """`default_cache_dir`: where the cache goes when MCPLOCAL_CACHE_DIR is not set (mcpd: under its
    data dir; mcplocal: ~/.cache/mcpctl/pipeline)."""
    directory = (settings.cache_dir or default_cache_dir or DEFAULT_CACHE_DIR).expanduser()
    cache = FileCache(directory, settings.cache_max_bytes)
    chat, embeddings = clients_from(settings)
    identity = f"{settings.embeddings_url}|{settings.embeddings_model}" if embeddings is not None else ""
    ranker = ToolRanker(embeddings, cache, identity=identity)
    return Surface(router, ContentPipeline(cache, chat), Gate(ranker))
