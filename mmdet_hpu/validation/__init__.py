"""Pre-flight checks: bad input is reported before training or testing starts.

Each check raises :class:`ValidationError` (a ``UserError``: the console scripts
print ``error: <message>`` and exit with status 2, no traceback) and never
changes a file that already exists. ``docs/failures.md`` lists every case.
"""
from .annotations import (
    DEFAULT_POLICY,
    POLICIES,
    AnnotationReport,
    box_problem,
    check_annotations,
    read_coco_json,
)
from .config_checks import accepted_kwargs, check_config_keys
from .data_paths import check_data_paths
from .errors import ValidationError
from .num_classes import check_num_classes, checkpoint_num_classes, shape_mismatches
from .preflight import (
    apply_annotation_policy,
    check_checkpoint_for_config,
    preflight_test,
    preflight_train,
)
from .work_dir import check_work_dir

__all__ = [
    'DEFAULT_POLICY', 'POLICIES', 'AnnotationReport', 'ValidationError', 'accepted_kwargs',
    'apply_annotation_policy', 'box_problem', 'check_annotations',
    'check_checkpoint_for_config', 'check_config_keys', 'check_data_paths',
    'check_num_classes', 'check_work_dir', 'checkpoint_num_classes', 'preflight_test',
    'preflight_train', 'read_coco_json', 'shape_mismatches'
]
