"""Detection training data (spec D6): label files, the loader and its augmentation, checked
against independent NumPy computations on generated images."""
import logging

import cv2
import numpy as np
import pytest

from darknetpy import resize_image
from darknetpy.detection_data import DetectionLoader, label_path, read_labels

NET = {"width": "64", "height": "48"}


def write_image(path, img_rgb: np.ndarray, boxes=None) -> str:
    """Write a uint8 RGB image as PNG and, if given, its label file next to it."""
    cv2.imwrite(str(path), np.ascontiguousarray(img_rgb[:, :, ::-1]))
    if boxes is not None:
        path.with_suffix(".txt").write_text("".join(f"{int(b[0])} {b[1]:.6f} {b[2]:.6f} {b[3]:.6f} {b[4]:.6f}\n"
                                                    for b in boxes))
    return str(path)


def rect_image(w, h, rect, colour=(255, 255, 255)):
    """A dark noisy image with one filled rectangle (x0, y0, x1, y1 exclusive), and its label row."""
    rng = np.random.default_rng(w * 1000 + h)
    img = rng.integers(0, 60, size=(h, w, 3), dtype=np.uint8)
    x0, y0, x1, y1 = rect
    img[y0:y1, x0:x1] = colour
    return img, [0, (x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h]


@pytest.fixture
def dataset(tmp_path):
    """Six images of different sizes, each with one or two rectangles."""
    paths = []
    for i, (w, h) in enumerate([(80, 60), (100, 100), (60, 90), (120, 70), (90, 90), (70, 50)]):
        img, row = rect_image(w, h, (w // 5, h // 4, w // 2, h // 2 + 5))
        img[h * 3 // 5:h * 9 // 10, w * 3 // 5:w * 9 // 10] = (200, 40, 40)
        row2 = [1, (w * 3 // 5 + w * 9 // 10) / 2 / w, (h * 3 // 5 + h * 9 // 10) / 2 / h,
                (w * 9 // 10 - w * 3 // 5) / w, (h * 9 // 10 - h * 3 // 5) / h]
        paths.append(write_image(tmp_path / f"im{i}.png", img, [row, row2]))
    return paths


# --------------------------------------------------------------------------- labels

def test_label_path_rule():
    assert label_path("data/obj/images/a.jpg") == "data/obj/images/a.txt"       # generic images/ not mapped
    assert label_path("coco/images/train2017/x.JPEG") == "coco/labels/train2017/x.txt"
    assert label_path("coco/images/val2014/x.jpg") == "coco/labels/val2014/x.txt"
    assert label_path("VOC/JPEGImages/y.png ") == "VOC/labels/y.txt"            # trailing space trimmed
    assert label_path("c:\\d\\images\\val2017\\z.bmp") == "c:\\d\\labels\\val2017\\z.txt"
    assert label_path("a/JPEGImages/JPEGImages/b.jpg") == "a/labels/JPEGImages/b.txt"   # first occurrence only
    assert label_path("a/b.jpg.png") == "a/b.jpg.txt"                          # only the last extension
    assert label_path("a/b.Jpg") == "a/b.Jpg"                                  # not handled upstream either
    assert label_path("a/b.tif") == "a/b.tif"


def test_bad_labels_are_skipped_with_one_warning_each(tmp_path, caplog):
    image = tmp_path / "img.png"
    lines = ["0 0.5 0.5 0.2 0.2",          # good
             "1 1.2 0.5 0.2 0.2",          # x > 1
             "1 0.5 -0.1 0.2 0.2",         # y < 0
             "2 0.5 0.5 0 0.2",            # w = 0
             "2 0.5 0.5 0.2 -0.3",         # h < 0
             "4 0.5 0.5 0.2 0.2",          # class >= classes
             "-1 0.5 0.5 0.2 0.2",         # class < 0
             "x 0.5 0.5 0.2 0.2",          # unparsable class
             "1 0.5 abc 0.2 0.2",          # unparsable number
             "1 0.5 0.5 0.2",              # too few fields
             "1 0.5 0.5 nan 0.2",          # nan
             "",                           # blank: ignored silently
             "3 0.25 0.75 0.5 1.0"]        # good (h = 1 allowed)
    image.with_suffix(".txt").write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING, logger="darknetpy"):
        boxes = read_labels(str(image), classes=4)
    np.testing.assert_array_equal(boxes, np.array([[0, .5, .5, .2, .2], [3, .25, .75, .5, 1]], np.float32))
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 10
    for number, what in zip(range(2, 12), ["x = 1.2", "y = -0.1", "w = 0", "h = -0.3", "class_id = 4",
                                           "class_id = -1", "'x'", "'0.5 abc", "5 fields", "w = nan"]):
        message = warned[number - 2]
        assert f"{image.with_suffix('.txt')}:{number}:" in message and what in message, message


def test_missing_label_file_is_no_boxes(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="darknetpy"):
        boxes = read_labels(str(tmp_path / "none.jpg"), classes=2)
    assert boxes.shape == (0, 5) and "none.txt" in caplog.text


# --------------------------------------------------------------------------- loader

def test_plain_resize_without_augmentation(dataset):
    with DetectionLoader(dataset, width=64, height=48, classes=2, batch=5, net=NET, augment=False,
                         threads=2) as loader:
        x, truths = loader.next()
    assert x.shape == (5, 3, 48, 64) and x.dtype == np.float32 and x.flags.c_contiguous
    assert len(truths) == 5
    for image, truth in zip(x, truths):
        # find which file it is by comparing with the plain resize of every image
        matches = []
        for p in dataset:
            rgb = cv2.imread(p)[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / 255
            if np.allclose(resize_image(rgb, 64, 48), image, atol=1e-6):
                matches.append(p)
        assert len(matches) == 1
        np.testing.assert_allclose(truth, read_labels(matches[0], 2), atol=1e-6)


def test_same_seed_same_batches_whatever_the_threads(dataset):
    def batches(threads, seed):
        with DetectionLoader(dataset, width=64, height=48, classes=2, batch=4, seed=seed, threads=threads,
                             net={**NET, "hue": ".1", "saturation": "1.5", "exposure": "1.5"}) as loader:
            return [loader.next() for _ in range(3)]

    one, two, other = batches(1, 7), batches(3, 7), batches(2, 8)
    for (x1, t1), (x2, t2) in zip(one, two):
        np.testing.assert_array_equal(x1, x2)
        assert all(np.array_equal(a, b) for a, b in zip(t1, t2))
    assert not np.array_equal(one[0][0], other[0][0])


def test_resize_changes_the_batch_shape(dataset):
    with DetectionLoader(dataset, width=64, height=48, classes=2, batch=2, net=NET) as loader:
        assert loader.next()[0].shape == (2, 3, 48, 64)
        loader.resize(96, 32)
        x, truths = loader.next()
        assert x.shape == (2, 3, 32, 96) and len(truths) == 2
        assert loader.next()[0].shape == (2, 3, 32, 96)


def test_unreadable_image_is_skipped_with_a_warning(dataset, tmp_path, caplog):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with caplog.at_level(logging.WARNING, logger="darknetpy"):
        with DetectionLoader([str(broken)] + dataset[:1], width=32, height=32, classes=2, batch=8,
                             net=NET) as loader:
            x, truths = loader.next()
    assert x.shape == (8, 3, 32, 32) and loader.skipped >= 1
    assert sum(str(broken) in r.getMessage() for r in caplog.records) == 1
