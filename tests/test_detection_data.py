"""Detection training data (spec D6): label files, the loader and its augmentation, checked
against independent NumPy computations on generated images."""
import logging

import cv2
import numpy as np
import pytest

from darknetpy import resize_image
from darknetpy.detection_data import DetectionLoader, label_path, read_labels
from conftest import hsv_distort_reference

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

    def same(a, b):
        return np.array_equal(a[0], b[0]) and all(np.array_equal(u, v) for u, v in zip(a[1], b[1]))

    one, two, other = batches(1, 7), batches(3, 7), batches(2, 8)
    assert all(same(a, b) for a, b in zip(one, two))
    assert not np.array_equal(one[0][0], other[0][0])
    with DetectionLoader(dataset, width=64, height=48, classes=2, batch=4, seed=7, first_batch=2,
                         net={**NET, "hue": ".1", "saturation": "1.5", "exposure": "1.5"}) as loader:
        assert same(loader.next(), one[2])     # a resumed run continues the sequence


def test_loader_warns_once_per_bad_label_line_and_never_trains_on_it(tmp_path, caplog):
    img, good = rect_image(50, 40, (5, 5, 30, 30))
    path = tmp_path / "a.png"
    write_image(path, img)
    path.with_suffix(".txt").write_text(f"0 {good[1]} {good[2]} {good[3]} {good[4]}\n7 0.5 0.5 0.2 0.2\n"
                                        "1 0.5 0.5 0.2 1.5\n")
    with caplog.at_level(logging.WARNING, logger="darknetpy"):
        with DetectionLoader([str(path)], width=32, height=32, classes=2, batch=4, net=NET, threads=2) as loader:
            truths = [t for _ in range(3) for t in loader.next()[1]]
            assert loader.bad_labels == 2
    assert [r.getMessage().split(": ")[0] for r in caplog.records] == [f"{path.with_suffix('.txt')}:2",
                                                                       f"{path.with_suffix('.txt')}:3"]
    assert all(len(t) <= 1 and np.all(t[:, 0] == 0) for t in truths)


def test_resize_changes_the_batch_shape(dataset):
    with DetectionLoader(dataset, width=64, height=48, classes=2, batch=2, net=NET) as loader:
        assert loader.next()[0].shape == (2, 3, 48, 64)
        loader.resize(96, 32)
        x, truths = loader.next()
        assert x.shape == (2, 3, 32, 96) and len(truths) == 2
        assert loader.next()[0].shape == (2, 3, 32, 96)


def test_close_stops_the_threads(dataset):
    import threading

    from darknetpy import DarknetError

    loader = DetectionLoader(dataset, width=32, height=32, classes=2, batch=3, net=NET, threads=3)
    loader.next()
    loader.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("darknetpy-detection-loader")]
    with pytest.raises(DarknetError, match="closed"):
        loader.next()


def test_unreadable_image_is_skipped_with_a_warning(dataset, tmp_path, caplog):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with caplog.at_level(logging.WARNING, logger="darknetpy"):
        with DetectionLoader([str(broken)] + dataset[:1], width=32, height=32, classes=2, batch=8,
                             net=NET) as loader:
            x, truths = loader.next()
    assert x.shape == (8, 3, 32, 32) and loader.skipped >= 1
    assert sum(str(broken) in r.getMessage() for r in caplog.records) == 1


# --------------------------------------------------------------------------- geometry against the pixels

def white_box(image: np.ndarray, colour=(1.0, 1.0, 1.0)):
    """Pixel box (x0, y0, x1, y1 exclusive) of the pixels close to colour in a CHW image, or None."""
    near = np.all(np.abs(image - np.array(colour, np.float32)[:, None, None]) < 0.3, axis=0)
    ys, xs = np.nonzero(near)
    if not len(xs):
        return None
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


def label_box(row, w, h):
    _, x, y, bw, bh = row
    return (x - bw / 2) * w, (y - bh / 2) * h, (x + bw / 2) * w, (y + bh / 2) * h


def two_rects(w, h):
    """A white and, right of it, a red rectangle: their order tells whether the image was flipped."""
    img, white = rect_image(w, h, (w // 6, h // 5, w // 2, h * 3 // 4))
    img[h // 3:h * 2 // 3, w * 2 // 3:w * 5 // 6] = (255, 0, 0)
    red = [1, (w * 2 // 3 + w * 5 // 6) / 2 / w, (h // 3 + h * 2 // 3) / 2 / h, (w * 5 // 6 - w * 2 // 3) / w,
           (h * 2 // 3 - h // 3) / h]
    return img[:, :, ::-1].copy(), np.array([white, red], np.float32)   # BGR for the augmenter


@pytest.mark.parametrize("letter_box", [False, True])
def test_crop_flip_letterbox_move_each_box_with_its_pixels(letter_box):
    from darknetpy.detection_augment import DetectionAugment, augment_boxes_image, keep_boxes

    aug = DetectionAugment(jitter=0.3, letter_box=letter_box)
    bgr, boxes = two_rects(120, 70)
    flips = 0
    outcomes = set()
    for seed in range(24):
        rng = np.random.default_rng(seed) if seed else None      # seed 0: no random part
        image, moved = augment_boxes_image(bgr, boxes, 64, 48, aug, rng)
        assert image.shape == (3, 48, 64)
        by_class = {int(r[0]): r for r in keep_boxes(moved, 64, 48, 200)}
        for cls, colour in ((0, (1, 1, 1)), (1, (1, 0, 0))):
            found = white_box(image, colour)
            if cls not in by_class:   # cropped away (or under a pixel): its colour must be (nearly) gone
                assert found is None or min(found[2] - found[0], found[3] - found[1]) <= 2
                continue
            np.testing.assert_allclose(found, label_box(by_class[cls], 64, 48), atol=1.0)
        if len(by_class) == 2:
            flipped = by_class[1][1] < by_class[0][1]
            flips += flipped
            outcomes.add((flipped, round(float(by_class[0][1]), 2)))
    assert 3 <= flips <= 20 and len(outcomes) > 10    # both flips and many crops were exercised


def test_letterbox_keeps_the_aspect_ratio_without_augmentation():
    from darknetpy.detection_augment import DetectionAugment, augment_boxes_image

    bgr, boxes = two_rects(120, 60)
    image, moved = augment_boxes_image(bgr, boxes, 64, 64, DetectionAugment(letter_box=True), None)
    # independent: the 120 x 60 image scaled by 64/120 sits centred, 32 rows high, from row 16
    scale, top = 64 / 120, (64 - 60 * 64 / 120) / 2
    for row in moved:
        _, x, y, w, h = boxes[int(row[0])]
        np.testing.assert_allclose(label_box(row, 64, 64), [(x - w / 2) * 120 * scale, (y - h / 2) * 60 * scale + top,
                                                           (x + w / 2) * 120 * scale, (y + h / 2) * 60 * scale + top],
                                   atol=0.6)


def test_small_boxes_and_max_boxes_are_dropped():
    from darknetpy.detection_augment import keep_boxes

    w, h = 64, 32
    boxes = np.array([[0, .5, .5, 0.99 / w, .5],     # narrower than one network pixel
                      [1, .5, .5, .5, 0.99 / h],     # lower than one pixel
                      [2, .5, .5, 1.01 / w, 1.01 / h],
                      [3, .5, .5, 0, 0],             # cropped away
                      [0, .2, .2, .1, .1],
                      [1, .3, .3, .1, .1]], np.float32)
    np.testing.assert_array_equal(keep_boxes(boxes, w, h, 200)[:, 0], [2, 0, 1])
    np.testing.assert_array_equal(keep_boxes(boxes, w, h, 5)[:, 0], [2, 0])   # max_boxes counts before dropping


def test_loader_drops_boxes_smaller_than_a_network_pixel(tmp_path):
    img, row = rect_image(200, 100, (20, 20, 80, 60))
    boxes = [row, [1, .6, .5, 0.7 / 32, .2], [1, .8, .5, 1.5 / 32, .2]]   # 0.7 and 1.5 network pixels wide
    path = write_image(tmp_path / "a.png", img, boxes)
    with DetectionLoader([path], width=32, height=32, classes=2, batch=1, net=NET, augment=False) as loader:
        _, (truth,) = loader.next()
    np.testing.assert_allclose(truth, np.array([boxes[0], boxes[2]], np.float32), atol=1e-6)


# --------------------------------------------------------------------------- mixing and blur

@pytest.mark.parametrize("kind", ["mosaic", "cutmix", "mixup"])
def test_mixed_images_keep_their_boxes_inside_and_on_their_pixels(kind):
    from darknetpy.detection_augment import DetectionAugment, training_image

    sources = [rect_image(w, h, r) for w, h, r in [(90, 60, (10, 10, 50, 40)), (70, 70, (30, 20, 60, 65)),
                                                   (100, 50, (40, 5, 95, 30)), (60, 90, (5, 40, 40, 85))]]
    aug = DetectionAugment(jitter=0.2, flip=True, **{kind: True}, mosaic_bound=True)
    mixed = 0
    for seed in range(16):
        rng = np.random.default_rng(seed)
        draw = lambda: (lambda s: (s[0][:, :, ::-1].copy(), np.array([s[1]], np.float32)))(
            sources[int(rng.integers(4))])
        image, truth = training_image(draw, 64, 64, aug, rng)
        assert image.shape == (3, 64, 64) and image.dtype == np.float32
        assert 0 <= image.min() and image.max() <= 1
        left, top, right, bottom = np.array([label_box(r, 64, 64) for r in truth]).reshape(-1, 4).T
        assert np.all(left >= -1e-4) and np.all(right <= 64 + 1e-4) and np.all(top >= -1e-4)
        assert np.all(bottom <= 64 + 1e-4) and np.all(truth[:, 3] >= 1 / 64) and np.all(truth[:, 4] >= 1 / 64)
        mixed += len(truth) > 1
        if kind != "mixup":   # each box is on its (white) rectangle; cutmix may cover up to half of it
            for x0, y0, x1, y1 in zip(left, top, right, bottom):
                inner = image[:, int(np.ceil(y0)) + 1:int(y1) - 1, int(np.ceil(x0)) + 1:int(x1) - 1]
                if inner.size:
                    white = np.all(inner > 0.7, axis=0).mean()
                    assert white == 1 if kind == "mosaic" else white >= 0.45, (seed, x0, y0, x1, y1)
    assert mixed >= 3    # mixing happened (about half of the images)


def test_blur_background_keeps_the_boxes_sharp():
    from darknetpy.detection_augment import _blur

    class Choice:
        def __init__(self, v):
            self.v = v

        def integers(self, n):
            return self.v

    image = np.random.default_rng(0).random((3, 40, 60), dtype=np.float32)
    truth = np.array([[0, .5, .5, .4, .4]], np.float32)       # pixels 18..42 x 12..28
    assert _blur(image, truth, 1, Choice(0)) is image
    background = _blur(image, truth, 1, Choice(1))
    np.testing.assert_array_equal(background[:, 12:28, 18:42], image[:, 12:28, 18:42])
    assert np.abs(background - image)[:, :10].mean() > 0.05
    whole = _blur(image, truth, 1, Choice(2))
    assert np.abs(whole - image)[:, 12:28, 18:42].mean() > 0.05


# --------------------------------------------------------------------------- options

def test_unsupported_keys_and_combinations_are_cfg_errors(dataset, tmp_path):
    from darknetpy import CfgError

    with pytest.raises(CfgError, match="gaussian_noise=1 is not supported"):
        DetectionLoader(dataset, width=32, height=32, classes=2, batch=1, net={"gaussian_noise": "1"})
    cfg = tmp_path / "m.cfg"
    cfg.write_text("[net]\nbatch=4\nsubdivisions=2\nwidth=32\nheight=32\nletter_box=1\n\nmosaic=1\n\n"
                   "[yolo]\nclasses=2\njitter=.3\nmax=5\n")
    with pytest.raises(CfgError, match=f"{cfg}:8: .*letter_box=1 and mosaic=1"):
        DetectionLoader.from_cfg(dataset, cfg, classes=2)
    cfg.write_text("[net]\nbatch=6\nsubdivisions=4\nwidth=32\nheight=48\nangle=5\n[yolo]\njitter=.3\n")
    with pytest.raises(CfgError, match=f"{cfg}:6: .*angle=5 is not supported"):
        DetectionLoader.from_cfg(dataset, cfg, classes=2)
    cfg.write_text("[net]\nbatch=6\nwidth=32\nheight=48\nchannels=1\n[yolo]\n")
    with pytest.raises(CfgError, match="channels=1"):
        DetectionLoader.from_cfg(dataset, cfg, classes=2)


def test_from_cfg_reads_net_and_the_last_yolo(oracle):
    cfg = oracle / "detector" / "cfg" / "tiny4.cfg"
    with DetectionLoader.from_cfg(["none.png"], cfg, classes=4, augment=False) as loader:
        assert (loader.batch, loader.size, loader.max_boxes) == (16, (128, 128), 200)
        o = loader.options
        assert (o.jitter, o.hue, o.saturation, o.exposure, o.flip, o.letter_box) == (.3, .1, 1.5, 1.5, True, False)
        loader.close()


def test_unaugmented_images_and_truths_are_upstreams(oracle, tmp_path):
    """Without the random part the loader's pipeline (decode, resize_image, label file) gives upstream's
    one-step input X.f32 and truths T.f32 (load_image_color + resize_image of 4 valid images)."""
    import subprocess
    import sys

    from darknetpy.augment import read_bgr
    from darknetpy.detection_augment import DetectionAugment, augment_boxes_image, keep_boxes

    det = oracle / "detector"
    subprocess.run([sys.executable, str(det / "make_shapes4_det.py"), str(tmp_path), "--ntrain", "0"],
                   check=True, capture_output=True)
    x_ref = np.fromfile(det / "onestep" / "X.f32", "<f4").reshape(4, 3, 128, 128)
    t_ref = np.fromfile(det / "onestep" / "T.f32", "<f4").reshape(4, 200, 6)
    for k, name in enumerate(["va_00097", "va_00096", "va_00086", "va_00099"]):
        path = str(tmp_path / "shapes4" / "images" / "valid" / f"{name}.png")
        image, boxes = augment_boxes_image(read_bgr(path)[0], read_labels(path, 4), 128, 128, DetectionAugment(),
                                           None)
        np.testing.assert_allclose(image, x_ref[k], atol=1e-6)
        ref = t_ref[k][t_ref[k, :, 0] != 0]
        np.testing.assert_allclose(keep_boxes(boxes, 128, 128, 200), ref[:, [4, 0, 1, 2, 3]], atol=1e-6)


@pytest.mark.parametrize("dhue,dsat,dexp", [(0.1, 1.5, 1.5), (-0.1, 1 / 1.4, 1.3), (0.05, 1.4, 0.7)])
def test_colour_distortion_is_darknets(dhue, dsat, dexp):
    from darknetpy.augment import distort

    rgb = np.random.default_rng(0).random((32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(distort(rgb.transpose(2, 0, 1), dhue, dsat, dexp).transpose(1, 2, 0),
                               hsv_distort_reference(rgb, dhue, dsat, dexp), atol=1e-5)
