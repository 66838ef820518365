"""Stream benchmark (issue 9): how many athletes one worker monitors live, and how fast.

* :mod:`stream.bench.load` - a producer that outpaces the worker (pre-encoded messages,
  N athletes at 100 Hz, paced in real time or as fast as possible);
* :mod:`stream.bench.floor` - the floor: a plain aiokafka consumer that only decodes;
* :mod:`stream.bench.quix_ref` - the same windowing and scoring in Quix Streams;
* :mod:`stream.bench.null_scorer` - a scorer with constant outputs (streaming cost alone);
* :mod:`stream.bench.contenders` - how each implementation is started and watched;
* :mod:`stream.bench.observe` - latency (Redis, ``injury.risk``) and lag observers;
* :mod:`stream.bench.stats` - pure arithmetic: percentiles, rates, the capacity search;
* :mod:`stream.bench.stream_bench` - the two measurements (backlog drain, live capacity);
* :mod:`stream.bench.report` - BENCHMARKS tables, raw JSON and the latency plot;
* :mod:`stream.bench.cli` - ``injury-monitor bench stream`` (``main(argv)``).

See BENCHMARKS.md for what each number means and how it was measured.
"""
