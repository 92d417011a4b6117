"""The ``detector`` and ``detect`` verbs of the ``darknetpy`` command (spec D3, D4): upstream's stdout lines."""
from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Optional

from .errors import DarknetError

__all__ = ["add_detector_verbs"]

log = logging.getLogger("darknetpy")

COCO_DATA = "cfg/coco.data"
_POINTS_HELP = ("\nSet -points flag:\n `-points 101` for MS COCO \n `-points 11` for PascalVOC 2007 (uncomment "
                "`difficult` in voc.data) \n `-points 0` (AUC) for ImageNet, PascalVOC 2010-2012, your custom dataset")


def add_detector_verbs(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from .cli import _darknet_flags, _verb

    p = _verb(sub, "detector", "darknet's detector verbs: train, test, valid, map, calc_anchors", common)
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)

    train = _verb(verbs, "train", "train a detector on the .data train list, as darknet's detector train", common)
    train.add_argument("data", help=".data file (train, valid, names, backup, saveweights, savelast)")
    train.add_argument("cfg", help="detector .cfg file")
    train.add_argument("weights", nargs="?", help="starting .weights (a partial cut, or _last to resume)")
    train.add_argument("-map", action="store_true", help="mAP on the valid list during training; saves _best")
    train.add_argument("-clear", action="store_true", help="reset the images seen and the iteration to 0")
    train.add_argument("-nan_ok", action="store_true", help="go on after a nan/inf loss, as darknet does")
    train.add_argument("-dont_show", action="store_true", help="accepted; no chart window is ever shown")
    train.add_argument("-thresh", type=float, default=0.25, help="score threshold of the mAP's TP/FP lines")
    train.add_argument("-iou_thresh", type=float, default=0.5, help="IoU of a true positive in the mAP")
    train.add_argument("-mAP_epochs", type=int, default=4, help="epochs between mAP calculations (4)")
    train.add_argument("-chart", metavar="PNG", help="loss/mAP chart (default: chart.png beside the backups)")
    train.add_argument("--max-batches", type=int, metavar="N", help="override the cfg's max_batches")
    train.add_argument("--backup-dir", metavar="DIR", help="override the .data backup folder")
    train.add_argument("--seed", type=int, help="seed for sampling and augmentation")
    train.add_argument("--loader-threads", type=int, default=2, metavar="N", help="image loading threads (2)")
    train.add_argument("-check", action="store_true",
                       help="print the memory training will take and whether it fits, then exit")
    _darknet_flags(train)
    train.set_defaults(run=_run_train)

    test = _verb(verbs, "test", "detect objects: darknet's 'name: NN%' lines", common)
    _data_cfg_weights(test)
    test.add_argument("image", nargs="?", help="image file (none: read paths from stdin)")
    _test_flags(test, 0.25)
    _darknet_flags(test)
    test.set_defaults(run=_run_test)

    valid = _verb(verbs, "valid", "write results/comp4_det_test_<class>.txt (or COCO json with eval=coco)",
                  common)
    _data_cfg_weights(valid)
    valid.add_argument("-out", metavar="PREFIX", help="file name prefix (default comp4_det_test_ / coco_results)")
    valid.add_argument("-dont_show", action="store_true", help="accepted; nothing is shown")
    _darknet_flags(valid)
    valid.set_defaults(run=_run_valid)

    mp = _verb(verbs, "map", "mean average precision on the .data valid list", common)
    _data_cfg_weights(mp)
    mp.add_argument("-thresh", type=float, default=0.25, help="score threshold of the TP/FP/IoU lines (0.25)")
    mp.add_argument("-iou_thresh", type=float, default=0.5, help="IoU that makes a detection a true positive")
    mp.add_argument("-points", type=int, default=0, help="0: area under the curve; 11: VOC2007; 101: COCO")
    mp.add_argument("-letter_box", action="store_true", help="accepted and ignored, as upstream (cfg decides)")
    mp.add_argument("-dont_show", action="store_true", help="accepted; nothing is shown")
    _darknet_flags(mp)
    mp.set_defaults(run=_run_map)

    anchors = _verb(verbs, "calc_anchors", "k-means anchors from the training labels; writes anchors.txt",
                    common)
    anchors.add_argument("data")
    anchors.add_argument("cfg", nargs="?", help="ignored, as upstream")
    anchors.add_argument("-num_of_clusters", type=int, default=5)
    anchors.add_argument("-width", type=int, default=-1)
    anchors.add_argument("-height", type=int, default=-1)
    anchors.add_argument("-seed", type=int, default=0, help="k-means initialisation seed (upstream: the clock)")
    anchors.add_argument("-show", action="store_true", help="accepted; nothing is drawn")
    anchors.add_argument("-dont_show", action="store_true", help="accepted; nothing is shown")
    anchors.set_defaults(run=_run_anchors)

    detect = _verb(sub, "detect", f"= detector test {COCO_DATA} <cfg> <weights> [image]", common)
    detect.add_argument("cfg")
    detect.add_argument("weights")
    detect.add_argument("image", nargs="?")
    _test_flags(detect, 0.24)
    _darknet_flags(detect)
    detect.set_defaults(run=_run_detect)


def _data_cfg_weights(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help=".data file (classes, names, valid, results, eval ...)")
    p.add_argument("cfg", help="detector .cfg file")
    p.add_argument("weights", help=".weights file")


def _test_flags(p: argparse.ArgumentParser, thresh: float) -> None:
    p.add_argument("-thresh", type=float, default=thresh, help=f"score threshold (default {thresh})")
    p.add_argument("-hier", type=float, default=0.5, help="hierarchy threshold ([region] trees)")
    p.add_argument("-ext_output", action="store_true", help="print box coordinates in pixels")
    p.add_argument("-letter_box", action="store_true", help="letterbox instead of stretching")
    p.add_argument("-dont_show", action="store_true", help="accepted; no window is shown")
    p.add_argument("-out", metavar="JSON", help="write upstream's JSON results to this file")
    p.add_argument("-save_labels", action="store_true", help="write a YOLO label file next to each image")
    p.add_argument("--no-save", action="store_true", help="do not write predictions.jpg")


def _test(data: Optional[str], args: argparse.Namespace) -> int:
    """upstream's test_detector console (spec D3.1-D3.4)."""
    import cv2

    from .cli import _error_text, _image_paths, _warn_device_flags
    from .detector import Detector, json_document
    from .detector_eval import label_path

    _warn_device_flags(args)
    frames = []
    status = 0
    with Detector(args.cfg, args.weights, data=data, letterbox=args.letter_box, threads=args.threads) as det:
        for path in _image_paths(args.image):
            start = time.perf_counter()
            try:
                d = det.detect(path, thresh=args.thresh, hier_thresh=args.hier)
            except (OSError, DarknetError) as exc:   # report and go on with the next path
                log.debug("detect %s", path, exc_info=True)
                print(f"darknetpy: error: {_error_text(exc)}", file=sys.stderr, flush=True)
                status = 1
                continue
            print(f"{path}: Predicted in {(time.perf_counter() - start) * 1000:f} milli-seconds.")
            for line in d.lines(args.ext_output):
                print(line)
            sys.stdout.flush()
            if not args.no_save:
                cv2.imwrite("predictions.jpg", d.plot(path))
            frames.append(d.to_json(len(frames) + 1))
            if args.save_labels:
                with open(label_path(path), "w") as f:
                    f.write("".join(line + "\n" for line in d.label_lines()))
    if args.out:
        with open(args.out, "w") as f:
            f.write(json_document(frames))
    return status


def _run_test(args: argparse.Namespace) -> int:
    return _test(args.data, args)


def _run_detect(args: argparse.Namespace) -> int:
    return _test(COCO_DATA, args)


def _check_memory(cfg: str) -> int:
    """The training-memory estimate by category, then whether it fits (else the advice)."""
    from .cli import _error_text
    from .memory import check_training_memory, estimate_training_memory

    m = estimate_training_memory(cfg)
    print(f"{cfg}: training with batch={m['batch']} subdivisions={m['subdivisions']} (mini-batch "
          f"{m['minibatch']}) at {m['width']} x {m['height']}")
    for key in ("weights", "optimizer_state", "activations", "deltas", "workspace", "data", "total"):
        print(f"  {key:<16}{m[key] / 2 ** 20:10.1f} MiB")
    try:
        check_training_memory(cfg)
    except DarknetError as exc:
        print(f"darknetpy: error: {_error_text(exc)}", file=sys.stderr)
        return 1
    print("fits in the memory available now")
    return 0


def _run_train(args: argparse.Namespace) -> int:
    from .cli import _train_device
    from .detector_train import train_detector

    if args.check:
        return _check_memory(args.cfg)
    train_detector(args.data, args.cfg, args.weights, clear=args.clear, map=args.map, nan_ok=args.nan_ok,
                   max_batches=args.max_batches, backup_dir=args.backup_dir, chart=args.chart,
                   threads=args.threads, loader_threads=args.loader_threads, thresh=args.thresh,
                   iou_thresh=args.iou_thresh, map_epochs=args.mAP_epochs, progress=args.progress,
                   darknet_log=True, seed=args.seed, device=_train_device(args))
    return 0


def _run_valid(args: argparse.Namespace) -> int:
    from .cli import _warn_device_flags
    from .detector_eval import validate_detector

    _warn_device_flags(args)
    start = time.time()
    files = validate_detector(args.data, args.cfg, args.weights, outfile=args.out, threads=args.threads)
    log.info("wrote %s", ", ".join(str(f) for f in files))
    print(f"Total Detection Time: {float(int(time.time() - start)):f} Seconds", file=sys.stderr)
    return 0


def _run_map(args: argparse.Namespace) -> int:
    from .cli import _warn_device_flags
    from .detector_eval import evaluate_detector

    _warn_device_flags(args)
    print("\n calculation mAP (mean average precision)...", flush=True)
    start = time.time()
    r = evaluate_detector(args.data, args.cfg, args.weights, thresh=args.thresh, iou_thresh=args.iou_thresh,
                          points=args.points, threads=args.threads)
    print(f"\n detections_count = {r.detections_count}, unique_truth_count = {r.unique_truth_count}  ")
    print(r)
    print(f"Total Detection Time: {int(time.time() - start)} Seconds", file=sys.stderr)
    print(_POINTS_HELP)
    return 0


def _run_anchors(args: argparse.Namespace) -> int:
    from .anchors import calc_anchors

    print(f"\n num_of_clusters = {args.num_of_clusters}, width = {args.width}, height = {args.height} ")
    if args.width < 0 or args.height < 0:
        print("Usage: darknetpy detector calc_anchors data/voc.data -num_of_clusters 9 -width 416 -height 416 ")
        print("darknetpy: error: set -width and -height", file=sys.stderr)
        return 2
    calc_anchors(args.data, args.num_of_clusters, args.width, args.height, seed=args.seed, echo=print)
    return 0
