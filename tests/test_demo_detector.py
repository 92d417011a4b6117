"""The demo's detection scenes (darknetpy demo, stage 8): labels are the tight boxes of the shapes."""
import cv2
import numpy as np
import pytest

from darknetpy.demo import SHAPES
from darknetpy.demo_detector import SCENE, draw_scene, make_scenes
from darknetpy.detection_data import read_labels


def test_scene_labels_are_the_tight_boxes_of_the_bright_shapes():
    for seed in range(20):
        image, rows = draw_scene(np.random.default_rng(seed))
        assert image.shape == (SCENE, SCENE, 3) and 1 <= len(rows) <= 3
        bright = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)[:, :, 2] > 120     # shapes: V >= 170, background <= 70
        inside = np.zeros_like(bright)
        for c, x, y, w, h in rows:
            assert 0 <= c < len(SHAPES)
            x0, x1 = round((x - w / 2) * SCENE), round((x + w / 2) * SCENE)
            y0, y1 = round((y - h / 2) * SCENE), round((y + h / 2) * SCENE)
            assert not inside[y0:y1, x0:x1].any()                           # boxes do not overlap
            inside[y0:y1, x0:x1] = True
            ys, xs = np.nonzero(bright[y0:y1, x0:x1])
            assert xs.min() <= 1 and ys.min() <= 1 and xs.max() >= x1 - x0 - 2 and ys.max() >= y1 - y0 - 2  # tight
        assert not (bright & ~inside).any()


def test_make_scenes_writes_labels_beside_the_images(tmp_path):
    data = make_scenes(tmp_path, seed=1, train=3, valid=2)
    text = data.read_text()
    assert "classes=6" in text and f"valid={tmp_path / 'valid.txt'}" in text
    paths = (tmp_path / "train.txt").read_text().split()
    assert len(paths) == 3 and len((tmp_path / "valid.txt").read_text().split()) == 2
    assert cv2.imread(paths[0]).shape == (SCENE, SCENE, 3)
    assert len(read_labels(paths[0], len(SHAPES))) >= 1


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_the_detector_stage_trains_from_a_partial_and_draws_its_boxes(tmp_path):   # 3 iterations: wild boxes
    from darknetpy import Network, partial
    from darknetpy.demo import CFG, TRUNK_LAYERS
    from darknetpy.demo_detector import train_demo_detector

    with Network(CFG, batch=1, fuse=False) as net:
        net.save_weights(tmp_path / "classifier.weights")
    trunk = tmp_path / "trunk.conv"
    assert partial(CFG, tmp_path / "classifier.weights", trunk, TRUNK_LAYERS) == TRUNK_LAYERS
    result = train_demo_detector(tmp_path, trunk, tmp_path / "boxes.jpg", seed=0, threads=None, progress=False,
                                 max_batches=3)
    assert result.iterations == 3 and result.weights.name == "demo_detect_final.weights"
    assert result.map.unique_truth_count > 60 and 0 <= result.map.map <= 1
    assert cv2.imread(str(result.picture)).shape == (2 * 4 * SCENE, 2 * 4 * SCENE, 3)
