#!/usr/bin/env python
"""Same as the ``mmdet-hpu-train`` console script (mmdet's tools/train.py flags + HPU flags)."""
from mmdet_hpu.cli.train import main

if __name__ == '__main__':
    main()
