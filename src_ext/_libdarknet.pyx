# cython: language_level=3
"""Thin handles over libdarknet. Private: darknetpy's Python modules own
validation, conversions and documentation."""
import logging
import os
import threading

import numpy as np

from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from libdarknet cimport *

# a layer's tensor (dn_network_layer_output / _delta) and its copy to host memory (..._copy)
ctypedef dn_status (*layer_view)(const dn_network *net, int index, const float **data, int *count) noexcept nogil
ctypedef dn_status (*layer_copy)(const dn_network *net, int index, float *dst, size_t n) noexcept nogil
from darknetpy.errors import (CfgError, DarknetError, DeviceError, InputError, OutOfMemoryError,
                              UnsupportedError, WeightsError)

_logger = logging.getLogger("darknetpy")


cdef void _log(int level, const char *message, void *user) noexcept with gil:
    _logger.log(level, message.decode("utf-8", "replace"))


dn_log_set(_log, NULL)


cdef int _check(dn_status status) except -1:
    if status == DN_OK:
        return 0
    message = dn_last_error().decode("utf-8", "replace")
    if status == DN_ERR_CFG:
        raise CfgError(message)
    if status == DN_ERR_WEIGHTS:
        raise WeightsError(message)
    if status == DN_ERR_NOT_FOUND:
        raise FileNotFoundError(message)
    if status == DN_ERR_IO:
        raise OSError(message)
    if status == DN_ERR_SHAPE:
        raise InputError(message)
    if status == DN_ERR_OOM:
        raise OutOfMemoryError(message)
    if status == DN_ERR_UNSUPPORTED:
        raise UnsupportedError(message)
    if status == DN_ERR_CANCELLED:
        raise KeyboardInterrupt(message)
    if status == DN_ERR_DEVICE:
        raise DeviceError(message)
    raise DarknetError(message)


cdef int _catch_interrupt():
    """Let Ctrl-C stop the engine call about to start (main thread only)."""
    if threading.current_thread() is threading.main_thread():
        return dnpy_catch_sigint()
    return 0


cdef int _finish(dn_status st, int caught) except -1:
    """Restore Python's SIGINT handler, then raise for a failed or interrupted call."""
    if caught and dnpy_release_sigint():
        raise KeyboardInterrupt
    return _check(st)


def resize_image_window(const float[:, :, ::1] src, int w, int h, int x0, int y0, int cw, int ch):
    """The (c, ch, cw) window at (x0, y0) of darknet's resize of src to (c, h, w)."""
    out = np.empty((src.shape[0], ch, cw), dtype=np.float32)
    cdef float[:, :, ::1] dst = out
    cdef dn_status st
    with nogil:
        st = dn_resize_image_window(&src[0, 0, 0], <int>src.shape[0], <int>src.shape[1], <int>src.shape[2],
                                    &dst[0, 0, 0], h, w, x0, y0, cw, ch)
    _check(st)
    return out


def cfg_sections(path, bint sections):
    """darknet's key=value reader: [(type, line, [(key, value, line), ...]), ...]."""
    cdef bytes b = os.fsencode(path)
    cdef dn_cfg *cfg = NULL
    cdef const char *type
    cdef const char *key
    cdef const char *value
    cdef int line, n, kline
    _check(dn_cfg_load(b, sections, &cfg))
    try:
        out = []
        for i in range(dn_cfg_count(cfg)):
            _check(dn_cfg_section_info(cfg, i, &type, &line, &n))
            options = []
            for j in range(n):
                _check(dn_cfg_option(cfg, i, j, &key, &value, &kline))
                options.append((key.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"),
                                kline))
            out.append((type.decode("utf-8", "surrogateescape"), line, options))
        return out
    finally:
        dn_cfg_release(cfg)


def cuda_device_count():
    """(number of CUDA devices, None) or (0, why CUDA is unusable)."""
    cdef int count = 0
    if dn_cuda_device_count(&count) != DN_OK:
        return 0, dn_last_error().decode("utf-8", "replace")
    return count, None


def cuda_memory_info(int ordinal):
    """(free, total) bytes of CUDA device `ordinal`."""
    cdef size_t free_bytes = 0, total_bytes = 0
    _check(dn_cuda_memory_info(ordinal, &free_bytes, &total_bytes))
    return free_bytes, total_bytes


def cuda_library_error(name):
    """Why GPU library `name` ("cublas", "cudnn") cannot be loaded, or None."""
    cdef bytes b = name.encode()
    cdef const char *why = dn_cuda_library_error(b)
    return None if why == NULL else why.decode()


def estimate_training_memory(cfg_path, int batch, int subdivisions, int width, int height):
    """dn_training_memory of a cfg as a dict (0 arguments: the cfg's values)."""
    cdef bytes path = os.fsencode(cfg_path)
    cdef const char *p = path
    cdef dn_training_memory m
    cdef dn_status st
    with nogil:
        st = dn_estimate_training_memory(p, batch, subdivisions, width, height, &m)
    _check(st)
    return m


def check_training_fits(cfg_path, size_t limit):
    """Raise the training build's OutOfMemoryError if a training network of the cfg would not fit."""
    cdef bytes path = os.fsencode(cfg_path)
    cdef const char *p = path
    cdef dn_status st
    with nogil:
        st = dn_check_training_fits(p, limit)
    _check(st)


CAPS = {"weights": DN_CAP_WEIGHTS, "trainable": DN_CAP_TRAINABLE, "cost": DN_CAP_COST,
        "detection": DN_CAP_DETECTION, "classifier": DN_CAP_CLASSIFIER}


def resize_image(const float[:, :, ::1] src, int w, int h):
    """darknet's resize_image: (c, H, W) float32 -> new (c, h, w) float32 array."""
    out = np.empty((src.shape[0], h, w), dtype=np.float32)
    cdef float[:, :, ::1] dst = out
    cdef dn_status st
    with nogil:
        st = dn_resize_image(&src[0, 0, 0], <int>src.shape[0], <int>src.shape[1], <int>src.shape[2],
                             &dst[0, 0, 0], h, w)
    _check(st)
    return out


def hsv_jitter(float[:, :, ::1] rgb, float dhue, float dsat, float dexp):
    """dn_hsv_jitter: darknet's HSV jitter of an RGB (3, h, w) float32 image, in place."""
    if rgb.shape[0] != 3:
        raise ValueError(f"hsv_jitter takes a (3, h, w) RGB image, got {tuple(rgb.shape)[:3]}")
    with nogil:
        dn_hsv_jitter(&rgb[0, 0, 0], <size_t>rgb.shape[1] * rgb.shape[2], dhue, dsat, dexp)


AUGMENT_DRAWS = DN_AUGMENT_DRAWS


def augment_classifier(const unsigned char[:, :, ::1] bgr, tuple settings, const double[::1] u,
                       float[:, :, ::1] out):
    """dn_augment_classifier: darknet's classification augmentation of an 8-bit BGR (h, w, 3) image
    with settings (width, height, min_crop, max_crop, angle, aspect, flip, hue, saturation,
    exposure) and AUGMENT_DRAWS uniform draws u, into out (3, height, width) RGB."""
    cdef dn_crop_augment aug
    (aug.width, aug.height, aug.min_crop, aug.max_crop, aug.angle, aug.aspect, aug.flip, aug.hue, aug.saturation,
     aug.exposure) = settings
    if bgr.shape[2] != 3 or u.shape[0] != DN_AUGMENT_DRAWS or tuple(out.shape)[:3] != (3, aug.height, aug.width):
        raise ValueError(f"augment_classifier takes a (h, w, 3) image, {DN_AUGMENT_DRAWS} draws and a "
                         f"(3, {aug.height}, {aug.width}) output, got {tuple(bgr.shape)[:3]}, {u.shape[0]} and "
                         f"{tuple(out.shape)[:3]}")
    cdef dn_status st
    with nogil:
        st = dn_augment_classifier(&bgr[0, 0, 0], <int>bgr.shape[0], <int>bgr.shape[1], &aug, &u[0], &out[0, 0, 0])
    _check(st)


cdef object _detections_arrays(dn_detections *d):
    """Copies of (bbox (n, 4), objectness (n,), prob (n, classes))."""
    n, c = d.n, d.classes
    bbox = np.empty((n, 4), dtype=np.float32)
    obj = np.empty(n, dtype=np.float32)
    prob = np.empty((n, c), dtype=np.float32)
    cdef float[:, ::1] vb = bbox
    cdef float[::1] vo = obj
    cdef float[:, ::1] vp = prob
    if n:
        memcpy(&vb[0, 0], d.bbox, 4 * n * sizeof(float))
        memcpy(&vo[0], d.objectness, n * sizeof(float))
        if c:
            memcpy(&vp[0, 0], d.prob, n * c * sizeof(float))
    return bbox, obj, prob


def nms(const float[:, ::1] bbox, const float[::1] objectness, const float[:, ::1] prob, float thresh,
        int kind, float beta):
    """upstream's NMS on copies of the records: returns the reordered (bbox, objectness, prob)."""
    cdef dn_detections d
    memset(&d, 0, sizeof(d))
    cdef int n = <int>bbox.shape[0], c = <int>prob.shape[1]
    if objectness.shape[0] != n or prob.shape[0] != n or bbox.shape[1] != 4:
        raise InputError("nms needs bbox (n, 4), objectness (n,) and prob (n, classes)")
    d.n = n
    d.capacity = n
    d.classes = c
    d.bbox = <float *>malloc(max(n, 1) * 4 * sizeof(float))
    d.objectness = <float *>malloc(max(n, 1) * sizeof(float))
    d.prob = <float *>malloc(max(n * c, 1) * sizeof(float))
    if d.bbox == NULL or d.objectness == NULL or d.prob == NULL:
        dn_detections_free(&d)
        raise MemoryError()
    if n:
        memcpy(d.bbox, &bbox[0, 0], 4 * n * sizeof(float))
        memcpy(d.objectness, &objectness[0], n * sizeof(float))
        if c:
            memcpy(d.prob, &prob[0, 0], n * c * sizeof(float))
    cdef dn_status st
    with nogil:
        st = dn_nms(&d, thresh, kind, beta)
    try:
        _check(st)
        return _detections_arrays(&d)
    finally:
        dn_detections_free(&d)


cdef object _copy_floats(const float *data, int count):
    out = np.empty(count, dtype=np.float32)
    cdef float[::1] view = out
    if count:
        memcpy(&view[0], data, count * sizeof(float))
    return out


def train_step_parallel(handles, const float[:, ::1] x, const float[:, ::1] y):
    """dn_network_train_step_parallel over the networks of `handles` (each its share of x, y)."""
    cdef int n = len(handles)
    cdef dn_network **nets = <dn_network **>malloc(n * sizeof(dn_network *))
    if nets == NULL:
        raise MemoryError()
    cdef float loss = 0
    cdef dn_status st
    cdef int caught
    try:
        for i, h in enumerate(handles):
            nets[i] = (<NetworkHandle>h)._get()
        caught = _catch_interrupt()
        with nogil:
            st = dn_network_train_step_parallel(nets, n, &x[0, 0], &y[0, 0], <int>y.shape[1], &loss)
        _finish(st, caught)
    finally:
        free(nets)
    return loss


cdef class NetworkHandle:
    """Owns one dn_network. Not thread-safe: the Python Network serialises calls."""
    cdef dn_network *net

    def __cinit__(self, cfg_path, int batch, size_t max_memory=0, device="cpu", bint keep_outputs=False):
        cdef bytes path = os.fsencode(cfg_path)
        cdef bytes dev = device.encode()
        cdef const char *p = path
        cdef const char *d = dev
        cdef dn_status st
        cdef dn_load_options options
        memset(&options, 0, sizeof(options))
        options.batch = batch
        options.max_memory = max_memory
        options.keep_outputs = keep_outputs
        options.device = d
        with nogil:
            st = dn_network_load(p, &options, &self.net)
        _check(st)
        dn_network_set_cancel(self.net, dnpy_interrupt_flag())

    def __dealloc__(self):
        dn_network_free(self.net)

    def close(self):
        dn_network_free(self.net)
        self.net = NULL

    cdef dn_network *_get(self) except NULL:
        if self.net == NULL:
            raise ValueError("Network is closed")
        return self.net

    def info(self):
        cdef dn_net_info i
        _check(dn_network_info(self._get(), &i))
        return i

    def layer_info(self, int index):
        cdef dn_layer_info i
        _check(dn_network_layer_info(self._get(), index, &i))
        return dict(index=i.index, type=i.type.decode(), kind=i.kind,
                    caps=frozenset(name for name, bit in CAPS.items() if i.caps & bit),
                    input_layers=tuple(i.input_layers[k] for k in range(i.n_inputs)),
                    input_shape=(i.in_c, i.in_h, i.in_w),
                    inputs=i.inputs, output_shape=(i.out_c, i.out_h, i.out_w), outputs=i.outputs,
                    batch_normalize=bool(i.batch_normalize), n_weights=i.n_weights, bflops=i.bflops,
                    summary=i.summary.decode())

    def layer_attrs(self, int index):
        """The layer's resolved hyper-parameters: {cfg key: int, float, str or tuple}."""
        cdef int n_attrs = 0, n_values = 0
        cdef dn_network *net = self._get()
        _check(dn_network_layer_attrs(net, index, NULL, 0, NULL, 0, &n_attrs, &n_values))
        cdef dn_attr *attrs = <dn_attr *>malloc(max(n_attrs, 1) * sizeof(dn_attr))
        cdef double *values = <double *>malloc(max(n_values, 1) * sizeof(double))
        cdef dn_attr *a
        try:
            if attrs == NULL or values == NULL:
                raise MemoryError()
            _check(dn_network_layer_attrs(net, index, attrs, n_attrs, values, n_values, &n_attrs, &n_values))
            out = {}
            for k in range(n_attrs):
                a = &attrs[k]
                if a.type == DN_ATTR_STR:
                    v = a.str.decode()
                elif a.type == DN_ATTR_INT:
                    v = int(a.values[0])
                elif a.type == DN_ATTR_FLOAT:
                    v = float(<float>a.values[0])
                elif a.type == DN_ATTR_INTS:
                    v = tuple(int(a.values[i]) for i in range(a.count))
                else:
                    v = tuple(float(<float>a.values[i]) for i in range(a.count))
                out[a.name.decode()] = v
            return out
        finally:
            free(attrs)
            free(values)

    def load_weights(self, path, int cutoff, bint strict=False):
        cdef bytes b = os.fsencode(path)
        cdef const char *p = b
        cdef int loaded = 0
        cdef dn_network *net = self._get()
        cdef dn_status st
        with nogil:
            st = dn_network_load_weights_checked(net, p, cutoff, strict, &loaded)
        _check(st)
        return loaded

    def save_weights(self, path, int cutoff):
        cdef bytes b = os.fsencode(path)
        cdef const char *p = b
        cdef dn_network *net = self._get()
        cdef dn_status st
        with nogil:
            st = dn_network_save_weights(net, p, cutoff)
        _check(st)

    def set_counters(self, uint64_t seen, int cur_iteration):
        _check(dn_network_set_counters(self._get(), seen, cur_iteration))

    def prepare(self):
        _check(dn_network_prepare(self._get()))

    def backend(self):
        return dn_network_backend(self._get()).decode()

    def set_threads(self, int threads):
        _check(dn_network_set_threads(self._get(), threads))

    def keep_output(self, int index):
        _check(dn_network_keep_output(self._get(), index))

    def resize(self, int width, int height):
        _check(dn_network_resize(self._get(), width, height))

    def memory(self):
        cdef dn_memory m
        _check(dn_network_memory(self._get(), &m))
        return dict(weights=m.weights, activations=m.activations, workspace=m.workspace)

    def seed(self, uint64_t seed):
        dn_network_seed(self._get(), seed)

    def forward(self, const float[:, ::1] x):
        """x: (n, inputs) float32, n <= batch."""
        cdef dn_network *net = self._get()
        cdef dn_status st
        cdef int caught = _catch_interrupt()
        with nogil:
            st = dn_network_forward(net, &x[0, 0], <int>x.shape[0])
        _finish(st, caught)

    def layer_output(self, int index):
        """A copy of layer `index`'s output buffer (batch * outputs floats)."""
        return self._layer_copy(index, dn_network_layer_output, dn_network_layer_output_copy)

    def layer_delta(self, int index):
        """A copy of layer `index`'s delta from the last training pass (empty without training buffers)."""
        return self._layer_copy(index, dn_network_layer_delta, dn_network_layer_delta_copy)

    cdef _layer_copy(self, int index, layer_view view_of, layer_copy copy_of):
        """A copy of one of layer `index`'s tensors: view_of finds it, copy_of brings it from any device."""
        cdef const float *data
        cdef int count
        cdef dn_network *net = self._get()
        _check(view_of(net, index, &data, &count))
        out = np.empty(count, dtype=np.float32)
        cdef float[::1] view = out
        cdef dn_status st = DN_OK
        if count:
            with nogil:
                st = copy_of(net, index, &view[0], count)
        _check(st)
        return out

    def detection_stats(self, int index):
        """A detection layer's statistics of its last training pass."""
        cdef dn_detection_stats st
        _check(dn_network_detection_stats(self._get(), index, &st))
        out = dict(st)
        out["line"] = st.line.decode()
        return out

    def train_step(self, const float[:, ::1] x, const float[:, ::1] y):
        cdef dn_network *net = self._get()
        cdef float loss = 0
        cdef dn_status st
        cdef int caught = _catch_interrupt()
        with nogil:
            st = dn_network_train_step(net, &x[0, 0], &y[0, 0], <int>y.shape[1], &loss)
        _finish(st, caught)
        return loss

    def phase_times(self):
        """Wall seconds of the last train_step's (or backward's) forward, backward and update."""
        cdef double t[3]
        dn_network_phase_times(self._get(), t)
        return t[0], t[1], t[2]

    def time_layers(self, bint on):
        _check(dn_network_time_layers(self._get(), on))

    def layer_times(self):
        """(each layer's wall seconds summed over the timed forwards, how many forwards)."""
        cdef dn_net_info i
        _check(dn_network_info(self._get(), &i))
        seconds = np.zeros(i.n_layers, np.float64)
        cdef double[::1] out = seconds
        cdef long forwards = dn_network_layer_times(self._get(), &out[0])
        return seconds, forwards

    def backward(self, const float[:, ::1] x, const float[:, ::1] y, bint want_input_delta):
        """(loss, input delta (batch, inputs) or None) of one mini-batch; accumulators reset first."""
        cdef dn_network *net = self._get()
        cdef double loss = 0
        cdef dn_status st
        cdef float[:, ::1] d
        cdef float *dp = NULL
        delta = None
        if want_input_delta:
            delta = np.zeros((x.shape[0], x.shape[1]), dtype=np.float32)
            d = delta
            dp = &d[0, 0]
        cdef int caught = _catch_interrupt()
        with nogil:
            st = dn_network_backward(net, &x[0, 0], &y[0, 0], <int>y.shape[1], &loss, dp)
        _finish(st, caught)
        return loss, delta

    cdef int _param(self, int index, name, float **data, float **delta) except -1:
        cdef bytes b = name.encode()
        cdef int count = 0
        _check(dn_network_param(self._get(), index, b, data, delta, &count))
        return count

    def param(self, int index, name):
        """Copies of (values, update accumulator or None) of a layer's parameter array."""
        cdef float *data
        cdef float *delta
        cdef int count = self._param(index, name, &data, &delta)
        return _copy_floats(data, count), None if delta == NULL else _copy_floats(delta, count)

    def set_param(self, int index, name, const float[::1] values):
        cdef float *data
        cdef float *delta
        cdef int count = self._param(index, name, &data, &delta)
        if values.shape[0] != count:
            raise ValueError(f"layer {index} {name} has {count} values, got {values.shape[0]}")
        if count:
            memcpy(data, &values[0], count * sizeof(float))

    def detector_info(self):
        cdef dn_detector_info i
        _check(dn_network_detector_info(self._get(), &i))
        return i

    def boxes(self, int b, int img_w, int img_h, float thresh, float hier, bint letter, bint relative, float nms,
              int kind, float beta):
        """Records of batch item b of the last forward after NMS (none when nms <= 0):
        (bbox (n, 4) centre form, relative or in pixels, objectness (n,), prob (n, classes))."""
        cdef dn_network *net = self._get()
        cdef dn_detections d
        memset(&d, 0, sizeof(d))
        cdef dn_status st
        with nogil:
            st = dn_network_boxes(net, b, img_w, img_h, thresh, hier, letter, relative, &d)
            if st == DN_OK and nms > 0:
                st = dn_nms(&d, nms, kind, beta)
        try:
            _check(st)
            return _detections_arrays(&d)
        finally:
            dn_detections_free(&d)

    def current_rate(self):
        return dn_network_current_rate(self._get())
