"""Check the CRC-32 that torch's zip writer stores for every entry of a checkpoint.

``torch.save`` writes a zip archive whose entries (``data.pkl``, one per tensor storage, ...)
each carry a CRC-32, but ``torch.load`` never checks them. The checksum of
:mod:`.checksum` covers the loaded *content* of the parts mmdet-hpu writes; a flipped byte in
the pickle stream itself can still decode to something else, e.g. lose the checksum record
together with a part, and then load as a file without a checksum. Checking the entries' CRCs
before unpickling closes that for every zip checkpoint, stock mmcv ones included.

Entries with a stored CRC of 0 are skipped: torch writes 0 when
``torch.utils.serialization.config.save.compute_crc32`` is off (a non-empty entry whose real
CRC is 0 goes unchecked, a 1 in 2**32 chance). Files in torch's legacy (non-zip) format are
not zip archives and are left to the content checksum.
"""
import zipfile

from .errors import CheckpointReadError

CHUNK_BYTES = 1 << 22


def verify_zip_crcs(filename: str, shown: str) -> None:
    """Read every entry of a zip checkpoint once and compare it with its stored CRC-32.

    Args:
        filename (str): Local path of the checkpoint.
        shown (str): How messages name the file.

    Raises:
        CheckpointReadError: An entry's bytes differ from the CRC recorded when it was
            written, or the archive's directory is broken.
    """
    try:
        if not zipfile.is_zipfile(filename):
            return
        with zipfile.ZipFile(filename) as archive:
            for info in archive.infolist():
                if info.CRC != 0 and not info.is_dir():
                    _read_through(archive, info)
    except Exception as err:  # a damaged directory makes zipfile raise almost anything
        detail = str(err) if isinstance(err, zipfile.BadZipFile) else repr(err)
        raise CheckpointReadError(
            f'checkpoint {shown!r} is corrupt: its zip archive does not match its content '
            f'({detail}): bytes changed on disk or in a copy, which torch.load does not check. '
            'Use an earlier checkpoint (epoch_*.pth) from the same work dir.') from None


def _read_through(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """Read one entry to its end: ``zipfile`` raises ``BadZipFile`` on a CRC mismatch there."""
    with archive.open(info) as entry:
        while entry.read(CHUNK_BYTES):
            pass
