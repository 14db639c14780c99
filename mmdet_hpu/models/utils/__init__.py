"""Static (fixed-shape) building blocks shared by the HPU model modules."""
from .gt_padding import pad_gt_list, stack_padded_gt, unpad_gt
from .static_grid_assigner import batched_box_iou, grid_assign, responsible_flags
from .static_postprocess import batched_nms_fixed, pack_detections, select_topk_candidates

__all__ = [
    'pad_gt_list', 'stack_padded_gt', 'unpad_gt', 'batched_box_iou', 'grid_assign',
    'responsible_flags', 'batched_nms_fixed', 'pack_detections', 'select_topk_candidates'
]
