"""Repository-level pytest configuration.

The plugin itself is loaded through its ``pytest11`` entry point (``pip install -e .``);
nothing here is needed for users' runs.  Benchmark scripts are not tests.
"""

collect_ignore = ["benchmarks"]
