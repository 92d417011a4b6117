"""The ``darknetpy`` command: darknet's verbs and argument grammar (spec §7).

Results go to stdout in upstream's exact console format; logs, warnings and
progress bars go to stderr.  Exit status: 0 success, 1 error (one line
``darknetpy: error: <message>``; the traceback only with ``-v``), 2 usage
error, 130 interrupted.  Every verb calls the same Python functions users can
call, so the CLI and the API give identical results.
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import re
import sys
import traceback
from collections.abc import Iterator, Sequence
from typing import Optional

from . import __version__
from .errors import DarknetError

__all__ = ["build_parser", "main"]

log = logging.getLogger("darknetpy")

IMAGENET_DATA = "cfg/imagenet1k.data"
_NUMBER = re.compile(r"-\d+(\.\d*)?")
_VALID_VERBS = {"valid": "single", "valid10": "10", "validfull": "full", "validmulti": "multi",
                "validcrop": "crop"}


# --------------------------------------------------------------------------- parser


def _common() -> argparse.ArgumentParser:
    """Logging/progress options, accepted before or after the verb."""
    p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    p.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                   help="more log output on stderr (-vv: debug); tracebacks on errors")
    p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="only errors on stderr")
    p.add_argument("--progress", dest="progress", action="store_true", default=argparse.SUPPRESS,
                   help="always show progress bars on stderr (default: only on a terminal)")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=argparse.SUPPRESS,
                   help="never show progress bars")
    return p


def _darknet_flags(p: argparse.ArgumentParser) -> None:
    """darknet's device flags: the train verbs train on a GPU with them; the others ignore them."""
    p.add_argument("-gpus", metavar="LIST", help="darknet's GPU list: train verbs train on the first where CUDA "
                   "is usable (else on the CPU, with a warning); other verbs ignore it, with a warning")
    p.add_argument("-i", type=int, metavar="N", help="darknet's GPU index (as -gpus N)")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads of the engine (default: all)")


def _verb(sub: argparse._SubParsersAction, name: str, help: str, common: argparse.ArgumentParser,
          **kwargs) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=help, parents=[common], allow_abbrev=False,
                          **kwargs)


def _add_classifier(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = _verb(sub, "classifier", "darknet's classifier verbs: predict, valid*, train", common)
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    predict = _verb(verbs, "predict", "classify images: darknet's name: prob lines", common)
    _data_cfg_weights(predict)
    predict.add_argument("image", nargs="?", help="image file (none: read paths from stdin, "
                                                  "prompting 'Enter Image Path: ' on a terminal)")
    predict.add_argument("-t", type=int, default=0, metavar="K",
                         help="lines to print (default: the .data top, else 1)")
    _darknet_flags(predict)
    predict.set_defaults(run=_run_predict)
    for verb, mode in _VALID_VERBS.items():
        v = _verb(verbs, verb, f"top-1/top-k accuracy on the .data valid list ({mode} mode, as darknet's classifier valid)",
                  common)
        _data_cfg_weights(v)
        v.add_argument("--allow-ambiguous", action="store_true",
                       help="accept paths with no or several labels, as darknet does")
        v.add_argument("--workers", type=int, metavar="N", help="image decoding threads (default: up to 4)")
        _darknet_flags(v)
        v.set_defaults(run=_run_valid, mode=mode)
    train = _verb(verbs, "train", "train a classifier on the .data train list, as darknet's classifier train", common)
    _data_cfg_weights(train)
    train.add_argument("-clear", action="store_true",
                       help="reset the images seen and the iteration after loading weights")
    train.add_argument("-dont_show", action="store_true", help="accepted; no chart window is ever shown")
    train.add_argument("-topk", action="store_true",
                       help="after training, print the top-k accuracy on the valid list")
    train.add_argument("--max-batches", type=int, metavar="N", help="override the cfg's max_batches")
    train.add_argument("--backup-dir", metavar="DIR", help="override the .data backup folder")
    train.add_argument("--seed", type=int, help="seed for weights init and augmentation")
    train.add_argument("--allow-ambiguous", action="store_true",
                       help="accept paths with no or several labels, as darknet does")
    _darknet_flags(train)
    train.set_defaults(run=_run_train)


def _data_cfg_weights(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help=".data file (classes, labels, names, valid, top ...)")
    p.add_argument("cfg", help="network .cfg file")
    p.add_argument("weights", nargs="?", help=".weights file (none: random initial weights)")


def build_parser() -> argparse.ArgumentParser:
    """The full ``darknetpy`` argument parser."""
    from . import imagenet

    common = _common()
    parser = argparse.ArgumentParser(
        prog="darknetpy", allow_abbrev=False, parents=[_common()],   # own actions: defaults differ
        description="darknet-compatible classifier tools on the libdarknet engine. "
                    "Results on stdout as darknet prints them; logs on stderr.")
    parser.set_defaults(verbose=0, quiet=False, progress=None)
    parser.add_argument("--version", action="version", version=f"darknetpy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_classifier(sub, common)
    from .cli_detector import add_detector_verbs

    add_detector_verbs(sub, common)

    classify = _verb(sub, "classify", f"= classifier predict {IMAGENET_DATA} <cfg> <weights> [image] "
                                      "with 5 lines", common)
    classify.add_argument("cfg")
    classify.add_argument("weights")
    classify.add_argument("image", nargs="?")
    _darknet_flags(classify)
    classify.set_defaults(run=_run_classify)

    partial = _verb(sub, "partial", "copy the first N layers' weights into a new file (seen = 0)", common)
    partial.add_argument("cfg")
    partial.add_argument("weights")
    partial.add_argument("out")
    partial.add_argument("N", type=int, help="number of layers to copy (layers 0..N-1)")
    partial.set_defaults(run=_run_partial)

    export = _verb(sub, "export", "write a network for other runtimes", common)
    formats = export.add_subparsers(dest="verb", metavar="FORMAT", required=True)
    onnx = _verb(formats, "onnx", "ONNX model with the weights (batch norm folded); [yolo] heads decoded to "
                                  "boxes ready for NMS unless --raw", common)
    onnx.add_argument("cfg")
    onnx.add_argument("weights")
    onnx.add_argument("out", help=".onnx file to write")
    onnx.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17, at least 13)")
    onnx.add_argument("--dynamic-batch", action="store_true", help="batch dimension set at run time (default 1)")
    onnx.add_argument("--raw", action="store_true",
                      help="one output per [yolo] layer, as darknet computes it, instead of decoded boxes")
    onnx.set_defaults(run=_run_export_onnx)

    inet = _verb(sub, "imagenet", "ImageNet (ILSVRC-2012) data treatment", common)
    inet_verbs = inet.add_subparsers(dest="verb", metavar="VERB", required=True)
    prepare = _verb(inet_verbs, "prepare", "official ILSVRC2012 downloads or Kaggle's copy -> darknet "
                                           "tree, lists, .data file", common)
    imagenet.add_cli_arguments(prepare)
    prepare.set_defaults(run=imagenet.run_cli)

    demo = _verb(sub, "demo", "end-to-end demo on generated data: prepare, train, valid, partial, "
                              "fine-tune, predict", common)
    demo.add_argument("--workdir", metavar="DIR", help="keep the files here (default: a temporary folder)")
    demo.add_argument("--seed", type=int, default=0, help="dataset and training seed (default 0)")
    demo.add_argument("--threads", type=int, metavar="N", help="CPU threads of the engine")
    demo.set_defaults(run=_run_demo)

    info = _verb(sub, "info", "versions and build; with a cfg, its layer table", common)
    info.add_argument("cfg", nargs="?")
    info.add_argument("weights", nargs="?")
    info.set_defaults(run=_run_info)
    return parser


# --------------------------------------------------------------------------- verbs


def _warn_device_flags(args: argparse.Namespace) -> None:
    if getattr(args, "gpus", None) is not None or getattr(args, "i", None) not in (None, 0):
        log.warning("this command runs on the CPU only: -gpus/-i ignored")


def _train_device(args: argparse.Namespace) -> str:
    """The device the train verbs use: the first GPU of -gpus (or -i N) where CUDA is usable, else
    the CPU with a warning saying why (darknet's CPU builds ignore the flags too)."""
    from . import cuda

    gpus = getattr(args, "gpus", None)
    if gpus is None and getattr(args, "i", None) in (None, 0):
        return "cpu"
    listed = [g.strip() for g in (gpus or str(args.i)).split(",") if g.strip()]
    if not listed or not all(g.isdigit() for g in listed):
        raise ValueError(f"-gpus takes a comma list of GPU numbers (e.g. 0,1), not {gpus!r}")
    why = cuda.unavailable_reason()
    if why:
        log.warning("-gpus/-i ignored, training on the CPU: %s", why)
        return "cpu"
    if len(listed) > 1:
        log.warning("training on several GPUs is not supported yet: training on cuda:%s only", listed[0])
    return f"cuda:{listed[0]}"


def _image_paths(image: Optional[str]) -> Iterator[str]:
    """The image argument, else paths from stdin (prompting on a terminal), as upstream."""
    if image:
        yield image
        return
    while True:
        try:
            line = input("Enter Image Path: ") if sys.stdin.isatty() else sys.stdin.readline()
        except EOFError:
            return
        if not line:
            return
        path = line.rstrip("\r\n")
        if path:
            yield path


def _predict(data: str, cfg: str, weights: Optional[str], image: Optional[str], k: int,
             threads: Optional[int]) -> int:
    """darknet's predict_classifier console (spec §6.5) on stdout."""
    from .classifier import Classifier

    with Classifier(cfg, weights, data=data, threads=threads) as clf:
        last = clf.network.layers[-1]
        print(f" classes = {clf.classes}, output in cfg = {last.output_shape[0]} ")
        top = min(k, clf.classes) if k > 0 else clf.top
        status = 0
        for path in _image_paths(image):
            print(f"{clf.width} {clf.height}")
            try:
                result = clf.predict(path, top)
            except (OSError, DarknetError) as exc:   # report and go on with the next path
                log.debug("predict %s", path, exc_info=True)
                print(f"darknetpy: error: {_error_text(exc)}", file=sys.stderr, flush=True)
                status = 1
                continue
            print(f"{path}: Predicted in {result.time_ms:f} milli-seconds.")
            print(result, flush=True)
    return status


def _run_predict(args: argparse.Namespace) -> int:
    _warn_device_flags(args)
    return _predict(args.data, args.cfg, args.weights, args.image, args.t, args.threads)


def _run_classify(args: argparse.Namespace) -> int:
    _warn_device_flags(args)
    return _predict(IMAGENET_DATA, args.cfg, args.weights, args.image, 5, args.threads)


def _run_valid(args: argparse.Namespace) -> int:
    """darknet's validate_classifier_* console (spec §6.4) on stdout."""
    from .validation import validate_classifier

    _warn_device_flags(args)
    single = args.mode == "single"

    def show(step) -> None:
        if single and step.index == 0:   # after the checks, so a refused run prints nothing
            sys.stdout.write(" TOP calculation...\n")
        sys.stdout.write(f"\n{step.text}" if single else f"{step.text}\n")
        sys.stdout.flush()

    progress = args.progress
    if progress is None and sys.stdout.isatty():
        progress = False   # the per-image lines already show progress on the terminal
    validate_classifier(args.data, args.cfg, args.weights, mode=args.mode,
                        allow_ambiguous=args.allow_ambiguous, progress=progress, workers=args.workers,
                        threads=args.threads, on_step=show)
    return 0


def _run_train(args: argparse.Namespace) -> int:
    from .train import train_classifier

    result = train_classifier(args.data, args.cfg, args.weights, clear=args.clear,
                              max_batches=args.max_batches, backup_dir=args.backup_dir,
                              threads=args.threads, allow_ambiguous=args.allow_ambiguous,
                              progress=args.progress, darknet_log=True, seed=args.seed,
                              device=_train_device(args))
    print(f"Saving weights to {result.final_weights}")
    if args.topk:
        from .validation import validate_classifier
        from .data import read_data_cfg

        data = read_data_cfg(args.data)
        accuracy = validate_classifier(args.data, args.cfg, result.final_weights, top=data.top or 5,
                                       allow_ambiguous=args.allow_ambiguous, progress=args.progress,
                                       threads=args.threads)
        print(f"\n accuracy top{accuracy.k} = {accuracy.topk:f} ")
    return 0


def _run_partial(args: argparse.Namespace) -> int:
    from .network import partial

    loaded = partial(args.cfg, args.weights, args.out, args.N)
    if not args.quiet:
        print(f"Done! Loaded {loaded} layers from weights-file ", file=sys.stderr)
        print(f"Saving weights to {args.out}", file=sys.stderr)
    return 0


def _run_export_onnx(args: argparse.Namespace) -> int:
    from .network import Network

    with Network(args.cfg, args.weights, strict=True) as net:
        net.export_onnx(args.out, opset=args.opset, batch=None if args.dynamic_batch else 1, decode=not args.raw)
    log.info("wrote %s", args.out)
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(workdir=args.workdir, seed=args.seed, threads=args.threads, progress=args.progress,
             echo=print)
    return 0


def _run_info(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from . import __file__ as package_file

    print(f"darknetpy {__version__} ({package_file.rsplit('/', 1)[0]})")
    print(f"python {platform.python_version()} on {platform.platform()}")
    print(f"numpy {np.__version__}, opencv {cv2.__version__}")
    print("engine: libdarknet, CPU (OpenMP + OpenBLAS); CUDA: not built")
    if args.cfg:
        from .network import Network

        with Network(args.cfg, args.weights, fuse=False) as net:
            print(net.summary())
    return 0


# --------------------------------------------------------------------------- main


def _subcommands(parser: argparse.ArgumentParser) -> dict:
    """The verb -> sub-parser table of *parser* (empty for a leaf)."""
    for action in parser._actions:   # argparse keeps no public accessor for these
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def _flags_first(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """Move the verb's options before its positional arguments.

    darknet takes flags anywhere (spec §7); argparse would otherwise consume
    all optional positionals (weights, image) at the first run of positionals,
    so ``predict data cfg -t 5 weights image`` would fail.
    """
    argv = list(argv)
    head, i = [], 0
    while i < len(argv):
        choices = _subcommands(parser)
        if not choices:
            break
        token = argv[i]
        head.append(token)
        i += 1
        if token in choices:
            parser = choices[token]
    options, positionals = [], []
    rest = argv[i:]
    while rest:
        token = rest.pop(0)
        if token == "--":
            positionals += rest
            break
        action = parser._option_string_actions.get(token.split("=", 1)[0] if token.startswith("--")
                                                  else token)
        if action is None:
            flag = token.startswith("-") and len(token) > 1 and not _NUMBER.fullmatch(token)
            (options if flag else positionals).append(token)
            continue
        options.append(token)
        if action.nargs != 0 and "=" not in token and rest:
            options.append(rest.pop(0))
    return head + options + positionals


def _setup_logging(verbose: int, quiet: bool) -> None:
    """A stderr handler on the darknetpy logger; OpenCV's own warnings only with -v."""
    import cv2

    levels = cv2.utils.logging
    levels.setLogLevel(levels.LOG_LEVEL_WARNING if verbose else levels.LOG_LEVEL_ERROR)
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO)[min(verbose, 1)] \
        if verbose < 2 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("darknetpy: %(levelname)s: %(message)s"))
    logger = logging.getLogger("darknetpy")
    logger.addHandler(handler)
    logger.setLevel(level)


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return f"{exc.strerror}: {exc.filename}"
    return str(exc) or type(exc).__name__


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit status (argparse exits 2 on usage errors)."""
    parser = build_parser()
    args = parser.parse_args(_flags_first(parser, sys.argv[1:] if argv is None else argv))
    _setup_logging(args.verbose, args.quiet)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("darknetpy: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:   # the reader went away (e.g. `| head`): stop quietly, as C tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (DarknetError, OSError) as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"darknetpy: error: {_error_text(exc)}", file=sys.stderr)
        return 1
