#!/usr/bin/env python
"""Same as the ``mmdet-hpu-audit`` console script: per-phase host syncs / dynamic shapes."""
from mmdet_hpu.cli.audit import main

if __name__ == '__main__':
    main()
