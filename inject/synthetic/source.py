"""The synthetic world as a spikein data source: the corpus reader for ``data.kind=synthetic``
and the benchmark reader for ``source: synthetic`` entries (world settings: ``data.synthetic``)."""
from __future__ import annotations

from typing import Iterator, Mapping

from core.errors import SpikeinError
from inject.benchmark_formats import Row
from inject.synthetic.world import SyntheticWorld


def corpus_documents(world_cfg: Mapping | None) -> Iterator[str]:
    """The world's documents, in its seeded order."""
    yield from SyntheticWorld(**dict(world_cfg or {})).documents()


def benchmark_rows(name: str, spec: Mapping, world_cfg: Mapping) -> Iterator[Row]:
    """The items of benchmark entry ``name`` (world benchmark ``spec.name``, else ``name``)."""
    world = SyntheticWorld(**world_cfg)
    bench = spec.get("name") or name
    names = list(world.benchmark_names())
    if bench not in names:
        raise SpikeinError(f"benchmark {name}: unknown synthetic benchmark {bench!r}; choose one of: {', '.join(names)}")
    for i, item in enumerate(world.benchmark(bench)):
        yield f"synthetic:{bench}:item {i + 1}", item
