"""The benchmark scenarios; each exposes `async def run(bench: Bench) -> list[Row]`.

`Bench` (bench/run.py) carries the broker, the mode's sizes, the output directory
and results earlier scenarios left for later ones (the ceiling for the fold's
ratio, the fold's throughput for the peer's ratio).
"""
