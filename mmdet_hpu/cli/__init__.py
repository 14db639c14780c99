"""Console scripts: ``mmdet-hpu-train``, ``mmdet-hpu-test`` (and ``tools/*.py``)."""
