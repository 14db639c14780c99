"""Command-line options shared by ``mmdet-hpu-train`` and ``mmdet-hpu-test``.

Both scripts accept mmdet 2.28's ``tools/train.py`` / ``tools/test.py`` flags plus
the flags of Habana's original Gaudi recipe (``--hpu``, ``--lazy``, ``--autocast``,
``--batch-size``, ...). Values are only parsed and validated here;
:mod:`mmdet_hpu.cli.overrides` applies them to the config.
"""
import argparse
import os
import sys

from mmcv import DictAction

DEVICES = ('auto', 'hpu', 'cuda', 'cpu')
EXECUTION_MODES = ('lazy', 'eager', 'compile')


def positive_int(text):
    """argparse type: an integer >= 1, with an error that names the bad value."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a positive integer, got {text!r}') from None
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be a positive integer (>= 1), got {value}')
    return value


def add_device_args(parser):
    """Add ``--device``, ``--hpu``/``--hpus``, the execution mode and ``--autocast``."""
    group = parser.add_argument_group('device')
    group.add_argument('--device', choices=DEVICES, default='auto',
                       help='device to run on; auto picks hpu, then cuda, then cpu')
    group.add_argument('--hpu', '--hpus', dest='hpus', type=int, nargs='?', const=1, default=None,
                       metavar='N', help='alias of --device hpu (the Gaudi recipe wrote --hpu=1)')
    modes = group.add_mutually_exclusive_group()
    for mode, text in (('lazy', 'lazy graph mode (PT_HPU_LAZY_MODE=1; default up to Gaudi '
                                'software 1.20)'),
                       ('eager', 'eager mode (PT_HPU_LAZY_MODE=0, or 2 on SynapseAI <= 1.12)'),
                       ('compile', 'eager + torch.compile (hpu_backend on HPU; the default from '
                                   'Gaudi software 1.21)')):
        modes.add_argument(f'--{mode}', dest='execution_mode', action='store_const', const=mode,
                           help=text)
    group.add_argument('--autocast', action='store_true',
                       help='bf16 mixed precision with torch.autocast (hpu, cuda or cpu)')
    return group


def add_dist_args(parser):
    """Add ``--launcher`` and both spellings of ``--local-rank``."""
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'mpi'], default='none',
                        help='job launcher: pytorch (torchrun) or mpi (mpirun); on SLURM, '
                             'start torchrun with srun')
    # torch>=2.0's launcher passes --local-rank, mmdet 2.x declares --local_rank.
    parser.add_argument('--local_rank', '--local-rank', dest='local_rank', type=int, default=0)


def add_cfg_options(parser):
    """Add ``--cfg-options`` (and its deprecated alias ``--options``)."""
    parser.add_argument('--cfg-options', '--options', dest='cfg_options', nargs='+',
                        action=DictAction,
                        help='override config keys, e.g. data_root=/data/coco/ '
                             'optimizer.lr=0.002 (xxx=[a,b] for lists)')


def add_safety_args(parser):
    """Add ``--bad-annotations`` and ``--trust-legacy-checkpoint`` (docs/failures.md)."""
    parser.add_argument('--bad-annotations', choices=('skip', 'fail', 'off'), default='skip',
                        help='bad boxes, unknown category ids, missing/unreadable images in a '
                             'COCO file: skip them with a warning (a cleaned copy is written '
                             'to the work dir; your file is unchanged), fail, or off (no '
                             'check). Default: skip')
    parser.add_argument('--trust-legacy-checkpoint', action='store_true',
                        help='load checkpoints with torch.load(weights_only=False) when safe '
                             'loading rejects them. SECURITY RISK: a malicious checkpoint can '
                             'execute arbitrary code on this machine; use only for files you '
                             'trust (e.g. that you wrote)')


def usage_error(message):
    """Print ``error: <message>`` on stderr and exit with status 2 (a user error)."""
    print(f'error: {message}', file=sys.stderr)
    raise SystemExit(2)


def finalize_common(args):
    """Resolve aliases shared by both scripts and export ``LOCAL_RANK``.

    Returns:
        argparse.Namespace: ``args`` with ``device`` resolved from ``--hpu``.
    """
    if args.hpus is not None:
        if args.hpus < 0 or args.hpus > 1:
            usage_error(f'--hpu takes 0 or 1 (one device per process; use a launcher for '
                        f'more), got {args.hpus}')
        if args.hpus == 1:
            if args.device not in ('auto', 'hpu'):
                usage_error(f'--hpu conflicts with --device {args.device}')
            args.device = 'hpu'
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args
