"""Images whose file size differs from the ``width``/``height`` the annotation file declares.

The boxes are in the declared coordinates; an image resized after annotation (or a
1x1 placeholder) would train on boxes that no longer cover their objects. Sizes come
from the file header (Pillow opens lazily: no decode), so the check is cheap.
"""
from concurrent.futures import ThreadPoolExecutor

EXIF_ORIENTATION = 0x0112
TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)  # rotated by 90 degrees: cv2/mmcv swap w and h
MAX_EXAMPLES = 5


def header_size(path):
    """``(width, height)`` as mmcv loads the image (EXIF rotation applied), or None.

    None when Pillow cannot read the header; the decode check reports such files.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(EXIF_ORIENTATION)
    except Exception:  # noqa: BLE001 - any unreadable header: leave it to the decode check
        return None
    if orientation in TRANSPOSED_ORIENTATIONS:
        width, height = height, width
    return width, height


def size_mismatches(images, paths):
    """The images whose file is not ``width`` x ``height``.

    Args:
        images (list[dict]): COCO ``images`` entries (with integer width/height).
        paths (list[str]): The file of each entry (existing files only are read).

    Returns:
        list[str]: ``"'<path>' (image id N) is WxH, the annotation file says wxh"``.
    """
    with ThreadPoolExecutor(max_workers=4) as pool:
        sizes = list(pool.map(header_size, paths))
    found = []
    for image, path, size in zip(images, paths, sizes):
        declared = (image.get('width'), image.get('height'))
        if size is not None and size != declared:
            found.append(f'{path!r} (image id {image.get("id")}) is {size[0]}x{size[1]}, the '
                         f'annotation file says {declared[0]}x{declared[1]}')
    return found


def mismatch_message(found, where):
    """One paragraph for :func:`size_mismatches` results of the file ``where``."""
    shown = '; '.join(found[:MAX_EXAMPLES]) + (' ...' if len(found) > MAX_EXAMPLES else '')
    return (f'{where}: {len(found)} image file(s) do not have the width/height the file '
            f'declares, so their boxes would not match the pixels: {shown}. Fix width/height '
            'in the annotation file, or replace the images with the annotated ones.')
