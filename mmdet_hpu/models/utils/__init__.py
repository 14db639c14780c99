"""Static (fixed-shape) building blocks shared by the HPU model modules."""
from .anchor_gather import gather_anchor_preds, gather_level_preds, gather_objectness_and_anchors
from .gt_padding import bucket_gt_list, gt_bucket, pad_gt_list, stack_padded_gt, unpad_gt
from .static_grid_assigner import grid_assign, level_box_iou, responsible_flags
from .static_postprocess import batched_nms_fixed, pack_detections, select_topk_candidates

__all__ = [
    'gather_anchor_preds', 'gather_level_preds', 'gather_objectness_and_anchors',
    'bucket_gt_list', 'gt_bucket', 'pad_gt_list',
    'stack_padded_gt', 'unpad_gt', 'level_box_iou', 'grid_assign', 'responsible_flags',
    'batched_nms_fixed', 'pack_detections', 'select_topk_candidates'
]
