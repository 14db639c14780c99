"""Fake Intel Gaudi PyTorch bridge for CPU-only tests of mmdet-hpu.

Design (kept as small and as honest as possible):

* Same module layout and call signatures as the parts of the real bridge that
  ``mmdet_hpu.device`` uses: ``torch.core`` (``mark_step``), ``torch.hpu``
  (``is_available``, ``current_device``, ``set_device``, ``synchronize``, memory
  stats), ``torch.distributed.hccl`` (``initialize_distributed_hpu``, registers the
  ``hccl`` process-group backend on import) and ``torch.hpex.optimizers``
  (``FusedSGD``, ``FusedAdamW`` with eps=1e-6).
* Every call is appended to ``fake_habana_recorder.RECORDER`` (a sibling module,
  so tests can hold it before the import). Importing ``torch.core`` records the
  import-time values of ``PT_HPU_LAZY_MODE`` and the autocast list variables.
* The "HPU" is backed by the CPU: ``habana_frameworks.torch.hpu.HOST_BACKING_DEVICE
  = 'cpu'``. ``mmdet_hpu.device.torch_device('hpu')`` honours that attribute (the
  real bridge has none) and returns ``torch.device('cpu')``, so a real model runs
  "on HPU" while every HPU-only branch (hccl, fused optimizers, mark_step,
  ``torch.autocast('hpu')``) is taken. The ``hccl`` backend is gloo underneath.
* A ``habana_torch_plugin-1.19.0.dist-info`` next to this package makes
  ``importlib.metadata`` report release 1.19 (lazy by default).

Use it through the ``fake_habana`` pytest fixture (``tests/conftest.py``), which puts
``tests/fake_habana`` on ``sys.path`` and resets modules, environment and caches.
"""
