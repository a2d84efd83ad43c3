"""System metrics the training process samples into its run log (`framework.tracking.system`)."""
import time

import pytest

from framework.tracking.logger import model_summary
from framework.tracking.system import SystemSampler


def test_a_busy_process_shows_its_cpu_time_and_its_memory():
    sampler = SystemSampler(every=0.05)
    assert not sampler.due()
    t = time.process_time()
    while time.process_time() - t < 0.2:  # busy: up to 100% of one core
        pass
    assert sampler.due()
    sample = sampler.sample()
    assert 20 < sample["system/process_cpu_percentage"] < 100 * 64  # (a shared machine may give it less)
    assert sample["system/process_rss_megabytes"] > 10
    if "system/cpu_utilization_percentage" in sample:  # Linux
        assert 0 < sample["system/cpu_utilization_percentage"] <= 100
        assert sample["system/system_memory_usage_megabytes"] > sample["system/process_rss_megabytes"]
    time.sleep(0.2)
    assert sampler.sample()["system/process_cpu_percentage"] < 50  # idle since the last sample
    assert sampler.count == 2


def test_model_summary_counts_weights_and_biases_per_layer():
    assert model_summary([64, 128, 10]) == {"model.parameters.layers.0": str(64 * 128 + 128),
                                            "model.parameters.layers.1": str(128 * 10 + 10),
                                            "model.parameters": str(64 * 128 + 128 + 128 * 10 + 10)}


@pytest.mark.gpu
def test_a_cupy_run_samples_its_gpus_memory():
    cupy = pytest.importorskip("cupy")
    sampler = SystemSampler(every=10)
    sampler.gpu = 0
    before = sampler.sample()["system/gpu_0_memory_usage_megabytes"]
    block = cupy.zeros(256 * 2**20, dtype=cupy.uint8)  # 256 MB
    after = sampler.sample()
    assert after["system/gpu_0_memory_usage_megabytes"] - before >= 250
    assert 0 < after["system/gpu_0_memory_usage_percentage"] <= 100
    del block
