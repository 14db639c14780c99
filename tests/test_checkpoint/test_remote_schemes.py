"""Every mmcv checkpoint scheme is loaded through the safe loader (no network needed).

A payload that creates a marker file when unpickled is served from a local HTTP
server on 127.0.0.1 (started and stopped here), pre-seeded in the torch hub cache,
listed in ``$MMCV_HOME/open_mmlab.json``, handed out by a fake pavi model cloud and a
fake petrel ``FileClient`` backend. Without ``--trust-legacy-checkpoint`` the load
fails with :class:`UnsafeCheckpointError` and the marker is never created; with the
opt-in it is (so the payload is real).
"""
import json
import os
import os.path as osp
import sys
import types
import urllib.parse

import pytest
import torch
from mmcv.runner import CheckpointLoader
from payload_helpers import serve_directory, write_payload

from mmdet_hpu.checkpoint import (
    CheckpointReadError,
    UnsafeCheckpointError,
    load_checkpoint_any,
    set_trust_legacy_checkpoints,
)


@pytest.fixture
def server(tmp_path):
    """``(base URL, served folder)`` of a local HTTP server, stopped after the test."""
    root = tmp_path / 'served'
    root.mkdir()
    with serve_directory(root) as base:
        yield base, str(root)


@pytest.fixture
def marker(tmp_path):
    return str(tmp_path / 'PAYLOAD_RAN')


@pytest.fixture
def homes(tmp_path, monkeypatch):
    """Private ``$TORCH_HOME`` and ``$MMCV_HOME``; the opt-in off before and after."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    monkeypatch.setenv('MMCV_HOME', str(tmp_path / 'mmcv_home'))
    os.makedirs(str(tmp_path / 'mmcv_home'))
    set_trust_legacy_checkpoints(False)
    yield tmp_path
    set_trust_legacy_checkpoints(False)


def hub_cache():
    path = osp.join(torch.hub.get_dir(), 'checkpoints')
    os.makedirs(path, exist_ok=True)
    return path


def _refused(filename, marker):
    with pytest.raises(UnsafeCheckpointError) as err:
        load_checkpoint_any(filename)
    assert not osp.exists(marker), 'the pickled payload ran'
    message = str(err.value)
    assert '--trust-legacy-checkpoint' in message and 'arbitrary code' in message
    assert filename in message  # names the URL / scheme path, not only the cache file
    return message


def test_every_mmcv_scheme_is_routed_through_the_plugin():
    import mmdet_hpu  # noqa: F401

    schemes = CheckpointLoader._schemes
    for prefix in ('', 'http://', 'https://', 'torchvision://', 'modelzoo://', 'open-mmlab://',
                   'openmmlab://', 'mmcls://', 'pavi://', r'(\S+\:)?s3://'):
        assert prefix in schemes
    assert all(loader.__module__.startswith('mmdet_hpu.') for loader in schemes.values())
    # mmcv logs 'load checkpoint from {name[10:]} path': the names stay mmcv's.
    assert {loader.__name__ for loader in schemes.values()} == {
        'load_from_local', 'load_from_http', 'load_from_torchvision', 'load_from_openmmlab',
        'load_from_mmcls', 'load_from_pavi', 'load_from_ceph'}


def test_http_payload_is_refused_and_runs_with_opt_in(homes, server, marker):
    base, root = server
    write_payload(osp.join(root, 'evil.pth'), marker)
    _refused(f'{base}/evil.pth', marker)
    set_trust_legacy_checkpoints(True)  # control: the payload is real
    load_checkpoint_any(f'{base}/evil.pth')
    assert osp.exists(marker)


def test_https_file_in_the_hub_cache_is_refused(homes, marker):
    write_payload(osp.join(hub_cache(), 'cached_evil.pth'), marker)
    # Port 9 is never contacted: the cached file is used, as torch and mmcv do.
    _refused('https://127.0.0.1:9/models/cached_evil.pth', marker)


def test_unreachable_url_is_a_clean_error(homes, server):
    base, _ = server
    with pytest.raises(CheckpointReadError, match='could not be downloaded'):
        load_checkpoint_any(f'{base}/missing.pth')


@pytest.mark.parametrize('scheme', ['torchvision://', 'modelzoo://'])
def test_torchvision_schemes(homes, marker, scheme):
    from mmcv.runner.checkpoint import get_torchvision_models

    url = get_torchvision_models()['resnet50']
    write_payload(osp.join(hub_cache(), osp.basename(urllib.parse.urlparse(url).path)), marker)
    _refused(f'{scheme}resnet50', marker)


def test_mmcls_scheme(homes, marker):
    from mmcv.runner.checkpoint import get_mmcls_models

    name, url = next(iter(get_mmcls_models().items()))
    write_payload(osp.join(hub_cache(), osp.basename(urllib.parse.urlparse(url).path)), marker)
    _refused(f'mmcls://{name}', marker)


@pytest.mark.parametrize('scheme', ['open-mmlab://', 'openmmlab://'])
def test_openmmlab_schemes_local_and_url(homes, server, marker, scheme):
    base, root = server
    mmcv_home = os.environ['MMCV_HOME']
    write_payload(osp.join(mmcv_home, 'evil_local.pth'), marker)
    write_payload(osp.join(root, 'evil_remote.pth'), marker)
    with open(osp.join(mmcv_home, 'open_mmlab.json'), 'w') as f:
        json.dump({'evil_local': 'evil_local.pth', 'evil_remote': f'{base}/evil_remote.pth'}, f)
    _refused(f'{scheme}evil_local', marker)
    with pytest.raises(UnsafeCheckpointError, match='evil_remote.pth'):
        load_checkpoint_any(f'{scheme}evil_remote')
    assert not osp.exists(marker)


def test_pavi_scheme(homes, marker, monkeypatch, tmp_path):
    evil = write_payload(str(tmp_path / 'evil.pth'), marker)

    class Model:
        name = 'evil.pth'

        @staticmethod
        def download(path):
            with open(evil, 'rb') as src, open(path, 'wb') as dst:
                dst.write(src.read())

    pavi = types.ModuleType('pavi')
    pavi.modelcloud = types.SimpleNamespace(get=lambda path: Model())
    monkeypatch.setitem(sys.modules, 'pavi', pavi)
    _refused('pavi://project/evil.pth', marker)


def test_s3_scheme(homes, marker, monkeypatch, tmp_path):
    from mmcv.fileio import BaseStorageBackend, FileClient

    evil = write_payload(str(tmp_path / 'evil.pth'), marker)

    class FakePetrel(BaseStorageBackend):
        def get(self, filepath):
            with open(evil, 'rb') as f:
                return f.read()

        def get_text(self, filepath, encoding='utf-8'):
            raise NotImplementedError

    monkeypatch.setattr(FileClient, '_backends', dict(FileClient._backends))
    monkeypatch.setattr(FileClient, '_prefix_to_backends', dict(FileClient._prefix_to_backends))
    monkeypatch.setattr(FileClient, '_instances', {})
    FileClient.register_backend('petrel', FakePetrel, force=True)
    _refused('s3://bucket/evil.pth', marker)
    _refused('cluster1:s3://bucket/evil.pth', marker)


def test_init_cfg_pretrained_and_load_checkpoint(homes, server, marker):
    from mmcv.runner import BaseModule, load_checkpoint

    base, root = server
    write_payload(osp.join(root, 'evil.pth'), marker)

    class Net(BaseModule):
        def __init__(self, init_cfg):
            super().__init__(init_cfg)
            self.w = torch.nn.Linear(2, 2)

    net = Net(dict(type='Pretrained', checkpoint=f'{base}/evil.pth'))
    with pytest.raises(UnsafeCheckpointError):
        net.init_weights()
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint(Net(None), f'{base}/evil.pth')
    assert not osp.exists(marker)


def test_direct_mmcv_module_functions_are_safe(homes, server, marker):
    """Code that calls mmcv's loaders by name (not via CheckpointLoader) is covered too."""
    import mmcv.utils
    from mmcv.runner import checkpoint as mmcv_checkpoint

    base, root = server
    write_payload(osp.join(root, 'evil.pth'), marker)
    for load in (mmcv_checkpoint.load_from_http, mmcv_checkpoint.load_url, mmcv.utils.load_url):
        with pytest.raises(UnsafeCheckpointError):
            load(f'{base}/evil.pth')
    assert not osp.exists(marker)


def test_safe_http_checkpoint_loads(homes, server):
    base, root = server
    torch.save({'state_dict': {'w': torch.ones(2)}, 'meta': {'epoch': 1}},
               osp.join(root, 'good.pth'))
    checkpoint = load_checkpoint_any(f'{base}/good.pth')
    assert torch.equal(checkpoint['state_dict']['w'], torch.ones(2))
    assert osp.isfile(osp.join(hub_cache(), 'good.pth'))
