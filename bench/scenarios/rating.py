"""The rate shopping row: shipments rated per second by the pure rating core
(`handoff_rate_shopping.bench.bench_quotes_per_second`, every carrier of the sample
catalogue quoted per shipment), in a process of its own."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import TYPE_CHECKING

from bench.common import Row

if TYPE_CHECKING:
    from bench.run import Bench

CODE = "from handoff_rate_shopping.bench import bench_quotes_per_second as b; print(b({n}))"


async def run(bench: Bench) -> list[Row]:
    n = bench.sizes.rating_shipments
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CODE.format(n=n), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        reason = err.decode(errors="replace").strip().splitlines()[-1:] or ["failed"]
        return [Row.na("rate shopping", "shipments quoted", "quotes/s", reason[0][:120])]
    value = float(out.decode().strip().splitlines()[-1])
    return [Row("rate shopping", "shipments quoted (pure rating, 1 core)", value, "quotes/s",
                note=f"{n:,} varied shipments, every eligible carrier quoted")]  # fmt: skip
