"""FPS of each selected precision at the configured batch size (``pytest -m performance``).

pytest-benchmark times one batch per round with the input resident on the device; FPS
(images/s) goes into ``extra_info`` since pytest-benchmark's ``ops`` counts calls.
"""

import numpy as np
import pytest


@pytest.mark.performance
def test_fps(benchmark, precision, res2net_session, res2net_artifacts, res2net_runner, res2net_thresholds,
             res2net_check, res2net_preprocess):
    settings = res2net_session.settings
    size = res2net_preprocess.image_size  # the crop the accuracy run feeds the same graph
    images = np.random.default_rng(0).standard_normal((settings.batch_size, 3, size, size), dtype=np.float32)
    batch_size = len(images)  # the batch actually timed, for the table
    run_batch = res2net_runner.timed_call(images)
    info = res2net_runner.info
    benchmark.group = f"{res2net_session.inputs.card.name} batch {batch_size}"
    benchmark.extra_info.update(
        {"batch_size": batch_size, "precision": precision, "backend": info.backend, "device": info.device}
    )
    benchmark.pedantic(run_batch, rounds=settings.perf_rounds, warmup_rounds=settings.perf_warmup, iterations=1)
    if benchmark.stats is None:
        pytest.skip("benchmarks are disabled (--benchmark-disable, or pytest-xdist): no FPS measured")

    seconds = benchmark.stats.stats
    fps = batch_size / seconds.median
    benchmark.extra_info.update({"fps": round(fps, 2), "fps_mean": round(batch_size / seconds.mean, 2),
                                 "rounds": seconds.rounds, **info.extra})
    trtexec_like = res2net_runner.benchmark(images, duration_s=3.0)  # None where no loop of its own (ORT CPU)
    if trtexec_like is not None:  # throughput, latency percentiles, copies
        benchmark.extra_info["trtexec_like"] = trtexec_like.as_dict()
    res2net_check.fps(precision, fps, info, batch_size, res2net_artifacts)
