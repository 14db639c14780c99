"""Plugin train/test entry points (device-aware versions of ``mmdet.apis``)."""
from .test import build_test_wrapper, multi_device_test, single_device_test
from .train import train_detector

__all__ = ['build_test_wrapper', 'multi_device_test', 'single_device_test', 'train_detector']
