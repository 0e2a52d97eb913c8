"""Step summaries as the pipeline writes them, for the tests of what reads them (the report)."""

# One EMBED task's summary (virnucpro embed --summary), reduced to the fields the report reads.
EMBED = {
    "frames": 30, "wall_seconds": 3.0, "frames_per_s": 10.0, "device": "NVIDIA H100", "precision": "fp16",
    "test_models": True, "torch": "2.11.0", "parts_reused": 0,
    "models": {"protein": {"tokens": 9000, "sequences": 30, "device_seconds": 0.5, "tokens_per_s": 18000.0},
               "nucleotide": {"tokens": 3000, "sequences": 30, "device_seconds": 0.25, "tokens_per_s": 12000.0}},
}
