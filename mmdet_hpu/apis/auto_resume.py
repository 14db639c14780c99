"""``--auto-resume``: the newest checkpoint in the work dir that can actually be loaded.

mmdet's ``find_latest_checkpoint`` returns ``latest.pth`` (or the highest
``*_N.pth``) without opening it, so a file truncated by a crash, a full disk or a
copy that did not finish makes the resume fail. :func:`find_resume_checkpoint`
tries the candidates newest first, skips each one that fails to load with a
warning naming the file and the reason, and returns the first good one.

Candidates: ``latest.pth`` (its target when it is a symlink) first, then every
``epoch_N.pth`` / ``iter_N.pth`` from the newest modification time to the oldest
(the higher ``N`` first on equal times). ``best_*.pth`` files of evaluation hooks
are not candidates: they hold an older training state.
"""
import glob
import logging
import os.path as osp
import re
from typing import List, Optional

from mmdet_hpu.errors import UserError

_NAME = re.compile(r'^(epoch|iter)_(\d+)\.pth$')


def _sort_key(path: str) -> tuple:
    match = _NAME.match(osp.basename(path))
    return (osp.getmtime(path), int(match.group(2)) if match else -1)


def resume_candidates(work_dir: str) -> List[str]:
    """The checkpoint files of ``work_dir``, newest first (see the module docstring)."""
    candidates = []
    latest = osp.join(work_dir, 'latest.pth')
    if osp.isfile(latest):
        candidates.append(osp.realpath(latest) if osp.islink(latest) else latest)
    found = [p for p in glob.glob(osp.join(glob.escape(work_dir), '*.pth'))
             if _NAME.match(osp.basename(p)) and osp.isfile(p)]
    for path in sorted(found, key=_sort_key, reverse=True):
        if osp.realpath(path) not in (osp.realpath(c) for c in candidates):
            candidates.append(path)
    return candidates


def _why_unusable(path: str) -> Optional[str]:
    """None if ``path`` loads as a checkpoint with weights, else the reason."""
    from mmdet_hpu.checkpoint import CheckpointError, load_checkpoint_safe

    try:
        checkpoint = load_checkpoint_safe(path, map_location='cpu')
    except CheckpointError as err:
        return str(err)
    except Exception as err:  # anything else that makes torch.load fail
        return f'{type(err).__name__}: {err}'
    from mmdet_hpu.validation.checkpoint_checks import structure_problem

    problem = structure_problem(checkpoint, 'resume')
    if problem:
        return f'{problem}, so it is not a training checkpoint'
    return None


def _first_sentence(text: str) -> str:
    """The reason without the advice that follows it (``'... could not be read (...)'``)."""
    head = text.split('. ', 1)[0].rstrip('.')
    return head[:300]


def find_resume_checkpoint(work_dir: str, logger: Optional[logging.Logger] = None
                           ) -> Optional[str]:
    """The newest checkpoint of ``work_dir`` that loads, or None if there is none.

    Each file is fully loaded (on the CPU) to check it; the runner then loads the
    chosen one again.

    Args:
        work_dir (str): The run's work dir.
        logger (logging.Logger, optional): Where to report skipped files. Defaults to
            the ``mmdet`` logger.

    Returns:
        str | None: Path of the checkpoint to resume from; None when the work dir
        holds no checkpoint.

    Raises:
        UserError: Checkpoints exist but none loads (starting afresh would overwrite
            them).
    """
    logger = logger or logging.getLogger('mmdet')
    if not osp.isdir(work_dir):
        logger.info(f'--auto-resume: work dir {work_dir} does not exist yet; starting afresh')
        return None
    candidates = resume_candidates(work_dir)
    reasons = []
    for path in candidates:
        reason = _why_unusable(path)
        if reason is None:
            logger.info(f'--auto-resume: resuming from {path}')
            return path
        logger.warning(f'--auto-resume: skipping {path}: {reason}')
        reasons.append(f'{osp.basename(path)}: {_first_sentence(reason)}')
    if candidates:
        raise UserError(
            f'--auto-resume: none of the {len(candidates)} checkpoint(s) in {work_dir} could '
            f'be loaded ({"; ".join(reasons[:3])}). Training did not start, so nothing there '
            'was overwritten: resume from a good copy with --resume-from PATH, or move the '
            'files away (or choose another --work-dir) to start afresh.')
    logger.info(f'--auto-resume: no checkpoint in {work_dir}; starting afresh')
    return None


__all__ = ['find_resume_checkpoint', 'resume_candidates']
