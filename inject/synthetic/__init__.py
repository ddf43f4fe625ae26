"""The built-in synthetic world: a seeded fictional encyclopedia and multiple-choice
benchmarks about facts stated in it, a data source for the offline demo and the tests.

``world`` builds the entities, the benchmarks and the corpus order; ``text`` writes the
articles; ``names`` holds the word lists and name makers; ``source`` plugs the world into
the corpus and benchmark readers (``inject.corpus``, ``inject.benchmarks``).
"""
from inject.synthetic.source import benchmark_rows, corpus_documents
from inject.synthetic.world import SyntheticWorld

__all__ = ["SyntheticWorld", "benchmark_rows", "corpus_documents"]
