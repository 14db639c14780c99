#!/usr/bin/env python
"""Same as the ``mmdet-hpu-test`` console script (mmdet's tools/test.py flags + HPU flags)."""
from mmdet_hpu.cli.test import main

if __name__ == '__main__':
    main()
