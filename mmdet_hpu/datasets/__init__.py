"""mmdet_hpu.datasets."""
from . import pipelines  # noqa: F401
