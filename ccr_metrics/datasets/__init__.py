"""Benchmark readers, as their authors distribute the files, and encoding with a model.

:mod:`.readers` reads each benchmark's annotations into a :class:`Benchmark`
(:mod:`.benchmark`; :mod:`._files` reads lines and refuses by file and line);
:mod:`.encode` runs a model over one, with a resumable cache, into what
:func:`~ccr_metrics.evaluate` takes. The public objects are re-exported from
:mod:`ccr_metrics`.
"""

from .benchmark import Benchmark
from .encode import EncodedBenchmark, encode_benchmark
from .readers import BENCHMARKS, load_benchmark

__all__ = ["BENCHMARKS", "Benchmark", "EncodedBenchmark", "encode_benchmark", "load_benchmark"]
