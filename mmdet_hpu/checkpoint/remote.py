"""Every mmcv checkpoint scheme through the safe (``weights_only``) loader.

mmcv 1.7 reads ``http(s)://``, ``torchvision://``/``modelzoo://``, ``open-mmlab://``/
``openmmlab://``, ``mmcls://``, ``pavi://`` and ``s3://`` checkpoints with
``torch.utils.model_zoo.load_url`` or ``torch.load`` (``weights_only=False`` for
downloads on every torch), so a file served from a URL or already in the torch hub
cache (``$TORCH_HOME/hub/checkpoints/``) could run code pickled in it. The loaders
here fetch the same bytes the same way (hub cache, ``$MMCV_HOME`` model lists, pavi,
mmcv ``FileClient``) and hand the local file to :func:`~.loading.load_checkpoint_safe`,
so every scheme has the same allow-list, the same ``--trust-legacy-checkpoint`` opt-in
and the same message. The functions keep mmcv's names: mmcv logs
``load checkpoint from {name[10:]} path: ...``.
"""
import contextlib
import os
import os.path as osp
import tempfile
import urllib.parse
import warnings
import zipfile

import torch

from .errors import CheckpointReadError
from .loading import load_checkpoint_safe, load_from_local


def hub_checkpoint_dir():
    """``$TORCH_HOME/hub/checkpoints``: where torch and mmcv cache downloaded weights."""
    return osp.join(torch.hub.get_dir(), 'checkpoints')


def _download(url, cached):
    try:
        torch.hub.download_url_to_file(url, cached, progress=False)
    except Exception as err:  # URLError, HTTPError, timeouts, refused connections...
        raise CheckpointReadError(
            f'checkpoint {url!r} could not be downloaded ({type(err).__name__}: '
            f'{str(err)[:200]}). Check the URL and the network, or download the file and '
            'pass its local path.') from None


def _unzip_legacy(cached, model_dir):
    """torch < 1.6 hub zips hold one legacy file: extract it (as torch.hub does)."""
    is_legacy = getattr(torch.hub, '_is_legacy_zip_format', None)
    if is_legacy is None or not is_legacy(cached):
        return cached
    with zipfile.ZipFile(cached) as archive:
        (member,) = archive.infolist()
        archive.extract(member, model_dir)
    return osp.join(model_dir, member.filename)


def cached_download(url, model_dir=None):
    """The local path of ``url`` in the hub cache, downloading it first if missing.

    Downloading only copies bytes (``torch.hub.download_url_to_file``: a temporary
    file renamed when complete); nothing is unpickled here.
    """
    model_dir = model_dir or hub_checkpoint_dir()
    os.makedirs(model_dir, exist_ok=True)
    cached = osp.join(model_dir, osp.basename(urllib.parse.urlparse(url).path))
    if not osp.exists(cached):
        _download(url, cached)
    return _unzip_legacy(cached, model_dir)


def load_url(url, model_dir=None, map_location=None):
    """Safe stand-in for ``torch.utils.model_zoo.load_url`` / ``mmcv.utils.load_url``."""
    return load_checkpoint_safe(cached_download(url, model_dir), map_location=map_location,
                                source=url)


def load_from_http(filename, map_location=None, model_dir=None, source=None):
    """``http://``/``https://``: local rank 0 downloads first, as in mmcv.

    ``source`` names a scheme path that resolved to this URL, for the messages.
    """
    from mmcv.runner import get_dist_info

    rank, world_size = get_dist_info()
    if rank == 0:
        path = cached_download(filename, model_dir)
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            path = cached_download(filename, model_dir)
    shown = f'{source} = {filename}' if source else filename
    return load_checkpoint_safe(path, map_location=map_location, source=shown)


def _named_url(models, name, scheme):
    if name not in models:
        raise CheckpointReadError(f'unknown checkpoint {scheme}{name}: not in mmcv\'s model '
                                  'list. Check the name, or pass a URL or a local path.')
    return models[name]


def load_from_torchvision(filename, map_location=None):
    """``torchvision://NAME`` (and the deprecated ``modelzoo://NAME``)."""
    from mmcv.runner.checkpoint import get_torchvision_models

    if filename.startswith('modelzoo://'):
        warnings.warn('The URL scheme of "modelzoo://" is deprecated, please use '
                      '"torchvision://" instead', DeprecationWarning, stacklevel=2)
        scheme, name = 'modelzoo://', filename[11:]
    else:
        scheme, name = 'torchvision://', filename[14:]
    name = name.lower().replace('_weights', '')
    url = _named_url(get_torchvision_models(), name, scheme)
    return load_from_http(url, map_location=map_location, source=filename)


def load_from_openmmlab(filename, map_location=None):
    """``open-mmlab://NAME`` / ``openmmlab://NAME``: a URL or a file in ``$MMCV_HOME``."""
    from mmcv.runner.checkpoint import (
        _get_mmcv_home,
        get_deprecated_model_names,
        get_external_models,
    )

    scheme = 'open-mmlab://' if filename.startswith('open-mmlab://') else 'openmmlab://'
    name = filename[len(scheme):]
    deprecated = get_deprecated_model_names()
    if name in deprecated:
        warnings.warn(f'{scheme}{name} is deprecated in favor of {scheme}{deprecated[name]}',
                      DeprecationWarning, stacklevel=2)
        name = deprecated[name]
    url = _named_url(get_external_models(), name, scheme)
    if url.startswith(('http://', 'https://')):
        return load_from_http(url, map_location=map_location, source=filename)
    return load_checkpoint_safe(osp.join(_get_mmcv_home(), url), map_location=map_location,
                                source=filename)


def load_from_mmcls(filename, map_location=None):
    """``mmcls://NAME``: downloaded, then mmcv's backbone key renaming."""
    from mmcv.runner.checkpoint import _process_mmcls_checkpoint, get_mmcls_models

    url = _named_url(get_mmcls_models(), filename[8:], 'mmcls://')
    return _process_mmcls_checkpoint(load_from_http(url, map_location=map_location,
                                                    source=filename))


def load_from_pavi(filename, map_location=None):
    """``pavi://PATH``: downloaded by pavi's model cloud to a temporary folder."""
    try:
        from pavi import modelcloud
    except ImportError:
        raise CheckpointReadError(f'{filename!r} needs the pavi package (pip install pavi), '
                                  'which is not installed.') from None
    model = modelcloud.get(filename[7:])
    with tempfile.TemporaryDirectory() as tmp_dir:
        downloaded = osp.join(tmp_dir, model.name)
        model.download(downloaded)
        return load_checkpoint_safe(downloaded, map_location=map_location, source=filename)


def load_from_ceph(filename, map_location=None, backend='petrel'):
    """``s3://`` (also ``bucket:s3://``): bytes from mmcv's petrel/ceph ``FileClient``."""
    from mmcv.fileio import FileClient

    if backend not in ('ceph', 'petrel'):
        raise ValueError(f'Load from Backend {backend} is not supported.')
    try:
        client = FileClient(backend=backend)
    except ImportError:
        client = FileClient(backend='ceph' if backend == 'petrel' else 'petrel')
    data = client.get(filename)
    fd, tmp = tempfile.mkstemp(suffix='.pth')
    try:
        with os.fdopen(fd, 'wb') as file:
            file.write(data)
        return load_checkpoint_safe(tmp, map_location=map_location, source=filename)
    finally:
        with contextlib.suppress(OSError):
            os.remove(tmp)


def load_checkpoint_any(filename, map_location='cpu'):
    """Load a local path or any mmcv scheme (``http://``, ``open-mmlab://``...) safely."""
    from mmcv.runner import CheckpointLoader

    return CheckpointLoader._get_checkpoint_loader(filename)(filename, map_location)


#: mmcv scheme prefixes -> safe loader (the prefixes of mmcv 1.7's registrations).
SCHEMES = {
    '': load_from_local,
    ('http://', 'https://'): load_from_http,
    'pavi://': load_from_pavi,
    r'(\S+\:)?s3://': load_from_ceph,
    ('modelzoo://', 'torchvision://'): load_from_torchvision,
    ('open-mmlab://', 'openmmlab://'): load_from_openmmlab,
    'mmcls://': load_from_mmcls,
}


def register_mmcv_loaders():
    """Replace every mmcv checkpoint scheme (and mmcv's module-level loaders) by these.

    ``mmcv.runner.CheckpointLoader`` then loads safely for ``runner.resume()``,
    ``runner.load_checkpoint()``, ``load_from``, ``mmcv.runner.load_checkpoint`` and
    ``init_cfg=dict(type='Pretrained', checkpoint=...)``; code that calls
    ``mmcv.runner.checkpoint.load_from_http`` or ``load_url`` directly gets these too.
    """
    import mmcv.utils
    from mmcv.runner import CheckpointLoader
    from mmcv.runner import checkpoint as mmcv_checkpoint

    for prefixes, loader in SCHEMES.items():
        CheckpointLoader.register_scheme(prefixes=prefixes, loader=loader, force=True)
        setattr(mmcv_checkpoint, loader.__name__, loader)
    mmcv_checkpoint.load_url = load_url
    mmcv.utils.load_url = load_url


__all__ = ['SCHEMES', 'cached_download', 'hub_checkpoint_dir', 'load_checkpoint_any', 'load_url',
           'register_mmcv_loaders'] + [f.__name__ for f in SCHEMES.values()]
