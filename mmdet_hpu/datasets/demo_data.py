"""Deterministic generator of a small COCO-format detection dataset.

Coloured circles, squares and triangles on textured backgrounds, several
objects per image, with exact boxes (the tight box of the drawn pixels).
Used by the demo (``make demo``) and, at tiny sizes, by the tests.

Layout written under ``out_dir``::

    train/000000.png ...            val/000000.png ...
    annotations/instances_train.json
    annotations/instances_val.json

Run as ``mmdet-hpu-demo-data --out data/demo`` or
``python -m mmdet_hpu.datasets.demo_data --out data/demo``.
"""
import argparse
import json
import os
import os.path as osp
import sys

import cv2
import numpy as np

CLASSES = ('circle', 'square', 'triangle')


def _background(rng, size):
    """Return a (size, size, 3) uint8 textured background: gradient + stripes + noise."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = rng.uniform(60, 190, size=3)
    tilt = rng.uniform(-50, 50, size=(2, 3))
    img = base + xx[..., None] * tilt[0] + yy[..., None] * tilt[1]
    period = rng.uniform(6, 20)
    angle = rng.uniform(0, np.pi)
    stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * size * 2 * np.pi / period)
    img += stripes[..., None] * rng.uniform(5, 20)
    img += rng.normal(0, 8, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _shape_mask(rng, label, size, cx, cy, half):
    """Return a (size, size) uint8 mask with one shape of class ``label``."""
    mask = np.zeros((size, size), np.uint8)
    if CLASSES[label] == 'circle':
        cv2.circle(mask, (cx, cy), half, 1, thickness=-1)
    elif CLASSES[label] == 'square':
        cv2.rectangle(mask, (cx - half, cy - half), (cx + half, cy + half), 1, thickness=-1)
    else:
        top = (cx, cy - half)
        left = (cx - half, cy + half)
        right = (cx + half, cy + half)
        cv2.fillPoly(mask, [np.array([top, left, right], np.int32)], 1)
    return mask


def _tight_box(mask):
    """Return the COCO box ``[x, y, w, h]`` of the non-zero pixels of ``mask``."""
    ys, xs = np.where(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return [x0, y0, int(xs.max()) + 1 - x0, int(ys.max()) + 1 - y0]


def _place_objects(rng, size, max_objects, min_half, max_half):
    """Sample non-overlapping (label, cx, cy, half) tuples inside the image."""
    placed = []
    for _ in range(int(rng.randint(1, max_objects + 1))):
        for _attempt in range(20):
            half = int(rng.randint(min_half, max_half + 1))
            cx = int(rng.randint(half, size - half))
            cy = int(rng.randint(half, size - half))
            if all(abs(cx - x) > half + h + 1 or abs(cy - y) > half + h + 1
                   for _, x, y, h in placed):
                placed.append((int(rng.randint(len(CLASSES))), cx, cy, half))
                break
    return placed


def _draw_image(rng, size, max_objects):
    """Return one image (H, W, 3) uint8 and its list of (label, [x, y, w, h])."""
    img = _background(rng, size)
    objects = []
    for label, cx, cy, half in _place_objects(rng, size, max_objects,
                                               max(3, size // 20), max(4, size // 6)):
        mask = _shape_mask(rng, label, size, cx, cy, half)
        img[mask.astype(bool)] = rng.randint(0, 256, size=3)
        objects.append((label, _tight_box(mask)))
    return img, objects


def _write_split(out_dir, split, num_images, size, max_objects, rng):
    """Write ``num_images`` images of one split and return its COCO dict."""
    os.makedirs(osp.join(out_dir, split), exist_ok=True)
    images, annotations = [], []
    for img_id in range(num_images):
        img, objects = _draw_image(rng, size, max_objects)
        file_name = f'{img_id:06d}.png'
        cv2.imwrite(osp.join(out_dir, split, file_name), img)
        images.append(dict(id=img_id, file_name=file_name, width=size, height=size))
        for label, box in objects:
            annotations.append(dict(id=len(annotations) + 1, image_id=img_id, category_id=label + 1,
                                    bbox=box, area=box[2] * box[3], iscrowd=0))
    categories = [dict(id=i + 1, name=name, supercategory='shape')
                  for i, name in enumerate(CLASSES)]
    return dict(images=images, annotations=annotations, categories=categories)


def generate_demo_dataset(out_dir, num_train=400, num_val=100, img_size=128, max_objects=4,
                          seed=0):
    """Generate the demo dataset; the same arguments always give the same files.

    Args:
        out_dir (str): Folder to write into (created if missing).
        num_train (int): Number of training images.
        num_val (int): Number of validation images.
        img_size (int): Side of the square images, in pixels (>= 32).
        max_objects (int): Maximum number of objects per image (>= 1).
        seed (int): Random seed.

    Returns:
        dict: Paths ``train_ann``, ``val_ann``, ``train_img_prefix``, ``val_img_prefix``.
    """
    if img_size < 32:
        raise ValueError(f'img_size must be >= 32, got {img_size}')
    if max_objects < 1 or num_train < 1 or num_val < 1:
        raise ValueError('num_train, num_val and max_objects must all be >= 1, got '
                         f'{num_train}, {num_val}, {max_objects}')
    rng = np.random.RandomState(seed)
    os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
    paths = {}
    for split, num in (('train', num_train), ('val', num_val)):
        coco = _write_split(out_dir, split, num, img_size, max_objects, rng)
        ann_file = osp.join(out_dir, 'annotations', f'instances_{split}.json')
        with open(ann_file, 'w') as f:
            json.dump(coco, f)
        paths[f'{split}_ann'] = ann_file
        paths[f'{split}_img_prefix'] = osp.join(out_dir, split) + '/'
    return paths


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Generate the mmdet-hpu demo shapes dataset '
                                     '(COCO format).')
    parser.add_argument('--out', default='data/demo', help='output folder (default: data/demo)')
    parser.add_argument('--num-train', type=int, default=400)
    parser.add_argument('--num-val', type=int, default=100)
    parser.add_argument('--img-size', type=int, default=128)
    parser.add_argument('--max-objects', type=int, default=4)
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        paths = generate_demo_dataset(args.out, args.num_train, args.num_val, args.img_size,
                                      args.max_objects, args.seed)
    except ValueError as err:  # a bad size or count: a user error (exit status 2)
        print(f'error: {err}', file=sys.stderr)
        raise SystemExit(2) from None
    print(f'demo dataset written: {args.num_train} train / {args.num_val} val images '
          f'of {args.img_size}px in {args.out} ({paths["train_ann"]})')


if __name__ == '__main__':
    main()
