"""The fixed-width text table of an audit report (:func:`mmdet_hpu.analysis.audit.run_audit`).

One row per phase (phases with NMS: before / during / after NMS), the training and inference
totals, one column block per audited side; then the dynamo graph breaks and the most frequent
offending call sites (``file:line``) of each side. A new per-side section is one more block
appended in :func:`format_table`.
"""
from typing import Dict, List, Tuple

from .compile_count import format_compile_lines
from .op_audit import KINDS

_COL = 6
_KIND_LABELS = ('sync', 'dyn', 'h2d', 'd2h', 'nms')
_LABELS = {'optimizer': 'optimizer (clip + step)', 'post-processing': 'post-proc.',
           'inference proposals': 'inf. proposals'}
_SEGMENTS = (('counts_pre_nms', 'before NMS'), ('counts_nms', 'NMS'),
             ('counts_post_nms', 'after NMS'))
TRAINING_TOTAL, INFERENCE_TOTAL = 'training iteration', 'inference'
OFFENDERS_SHOWN = 8


def _rows(phases: Dict) -> List[Tuple[str, str, str]]:
    """(label, phase, counts key) of every row, totals included, in phase order."""
    rows = []
    names = [name for name in phases if name not in (TRAINING_TOTAL, INFERENCE_TOTAL)]
    for name in names:
        short = _LABELS.get(name, name)
        if 'counts_pre_nms' in phases[name]:
            rows += [(f'{short} {label}', name, key) for key, label in _SEGMENTS]
        else:
            rows.append((short, name, 'counts'))
        if name == 'optimizer':
            rows.append(('= training iteration', TRAINING_TOTAL, 'counts'))
    rows.append(('= inference', INFERENCE_TOTAL, 'counts'))
    return rows


def _cells(phase: Dict, key: str) -> str:
    counts = phase.get(key, {})
    nms = phase.get('nms_calls', '') if key in ('counts', 'counts_nms') else ''
    return ''.join(f'{counts.get(kind, 0):>{_COL}}' for kind in KINDS) + f'{nms!s:>{_COL}}'


def _stock_line(report: Dict) -> str:
    state = report.get('stock', 'audited')
    if state == 'same as configured':
        return ('stock: the same model (no HPU type in the config: audited as-is, configured '
                '== stock)')
    if state == 'skipped':
        return 'stock: not audited (--skip-stock)'
    stock = report['sides']['stock']
    pairs = ', '.join(f'{k} -> {v}' for k, v in report.get('hpu_types', {}).items())
    return (f"stock = {stock['detector']} + {stock['head']} (mmdet, same weights"
            f"{'; ' + pairs if pairs else ''})")


def _header(report: Dict, sides: List[str]) -> List[str]:
    sizes = report['sizes']
    (th, tw), (vh, vw) = sizes['train_hw'], sizes['test_hw']
    counts = sizes['gt_counts']
    configured = report['sides']['configured']
    width = _COL * len(_KIND_LABELS)
    kinds = ''.join(f'{k:>{_COL}}' for k in _KIND_LABELS)
    return [f"mmdet-hpu audit: {report['config']} on {report['device']}",
            f"train: batch {sizes['batch_size']} @ {th}x{tw}, {sum(counts)} GT boxes "
            f"{tuple(counts)}; inference: batch {sizes['test_batch_size']} @ {vh}x{vw}",
            f"configured = {configured['detector']} + {configured['head']} "
            f"({configured.get('kind', 'single-stage')})",
            _stock_line(report),
            'sync = aten::_local_scalar_dense; dyn = dynamic-shape ops (nonzero, unique, '
            'masked_select, bool-mask index/index_put, NMS);',
            'h2d / d2h = host->device / device->host copies (tensors from host data, '
            'tolist/numpy); nms = NMS calls',
            '',
            f"{'':<26}|" + ' |'.join(f'{side:>{width}}' for side in sides),
            f"{'phase':<26}|" + ' |'.join(kinds for _ in sides)]


def _breaks(side: Dict, key: str) -> str:
    result = side.get('explain', {}).get(key)
    if result is None:
        return 'n/a'
    if result.get('error'):
        return 'error'
    return str(result['graph_break_count'])


def _explain_lines(report: Dict, sides: List[str]) -> List[str]:
    data = report['sides']
    keys = []
    for side in sides:
        keys += [key for key in data[side].get('explain', {}) if key not in keys]
    if not keys:
        return []
    lines = ['', f"{'torch._dynamo.explain graph breaks':<36}" +
             ''.join(f'{side:>12}' for side in sides)]
    for key in keys:
        lines.append(f'{key:<36}' + ''.join(f'{_breaks(data[side], key):>12}'
                                             for side in sides))
    return lines


def _offender_lines(name: str, side: Dict) -> List[str]:
    found = []
    for phase, data in side['phases'].items():
        found += [dict(item, phase=phase) for item in data.get('offenders', ())]
    if not found:
        return ['', f'{name}: no host sync, dynamic-shape op or copy recorded']
    found.sort(key=lambda item: -item['count'])
    lines = ['', f'{name}: most frequent offending call sites (all of them: --json)']
    for item in found[:OFFENDERS_SHOWN]:
        lines.append(f"  {item['count']:>4} x {item['kind']:<7} {item['op']:<32} "
                     f"{item['phase']:<19} {item['where']}")
    return lines


def format_table(report: Dict) -> str:
    """Render an audit report as a fixed-width text table."""
    sides = list(report['sides'])
    lines = _header(report, sides)
    for label, phase, key in _rows(report['sides']['configured']['phases']):
        cells = [_cells(report['sides'][s]['phases'].get(phase, {}), key) for s in sides]
        lines.append(f'{label:<26}|' + ' |'.join(cells))
    lines += _explain_lines(report, sides)
    lines += format_compile_lines(report)
    for side in sides:
        lines += _offender_lines(side, report['sides'][side])
    return '\n'.join(lines)
