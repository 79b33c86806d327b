"""An example custom content stage, installed the way a package is (an `mcpctl.stages` entry point
in example_stages-0.1.0.dist-info beside it; put this directory on PYTHONPATH, or `pip install` a
package declaring the same entry point):

    [project.entry-points."mcpctl.stages"]
    redact-digits = "example_stages:redact_digits"

`redact-digits` replaces every digit of a result with `#` (config `mask`, default "#"). The work goes
through `ctx.cache.get_or_compute`, so the same text is redacted once; each real computation appends
a line to the file named by EXAMPLE_STAGES_LOG (when set), which is how the tests count them.
"""

from __future__ import annotations

import os
import re
from typing import Any

_DIGIT = re.compile(r"[0-9]")


async def redact_digits(content: Any, ctx: Any) -> Any:
    mask = str(ctx.config.get("mask", "#"))

    async def compute() -> str:
        log = os.environ.get("EXAMPLE_STAGES_LOG")
        if log:
            with open(log, "a", encoding="utf-8") as out:
                out.write(f"{len(content.text)}\n")
        return _DIGIT.sub(mask, content.text)

    return content.with_(text=await ctx.cache.get_or_compute(("redact", content.text), compute))
