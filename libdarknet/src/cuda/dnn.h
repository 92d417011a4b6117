/* cuDNN convolutions (dnn.c): one layer's descriptors and chosen algorithms. */
#ifndef DN_CUDA_DNN_H
#define DN_CUDA_DNN_H

#include "cuda.h"

/* The values of cuDNN 9's enums used here (checked against cudnn.h by tests/test_cuda.py). */
enum {
    DN_DNN_SUCCESS = 0,           /* CUDNN_STATUS_SUCCESS */
    DN_DNN_NCHW = 0,              /* CUDNN_TENSOR_NCHW */
    DN_DNN_FLOAT = 0,             /* CUDNN_DATA_FLOAT */
    DN_DNN_CROSS_CORRELATION = 1, /* CUDNN_CROSS_CORRELATION */
    DN_DNN_FMA_MATH = 3           /* CUDNN_FMA_MATH */
};

/* What a layer's descriptors were made for. */
typedef struct dn_cuda_dnn_shape {
    int batch, c, h, w, n, out_h, out_w, size, stride_x, stride_y, pad, dilation, groups;
} dn_cuda_dnn_shape;

/* cudnnConvolution{Fwd,BwdData,BwdFilter}AlgoPerf_t, which share this layout. */
typedef struct dn_cuda_dnn_perf {
    int algo, status;
    float time;
    size_t memory;
    int determinism, math_type, reserved[3];
} dn_cuda_dnn_perf;

typedef struct dn_cuda_perf_list {
    int n;
    dn_cuda_dnn_perf perf[16];
} dn_cuda_perf_list;

struct dn_cuda_dnn {
    dn_cuda_dnn_shape shape;
    int trained;                   /* the backward algorithms were chosen too */
    void *x, *y, *w, *conv;        /* descriptors: input, output, filter, convolution */
    int fwd, bwd_data, bwd_filter; /* algorithms */
    size_t fwd_bytes, bwd_data_bytes, bwd_filter_bytes;
};
typedef struct dn_cuda_dnn dn_cuda_dnn;

/* (Re)make *d's descriptors for `sh` and choose its algorithms (backward ones too when train). */
dn_status dn_cuda_dnn_setup(void *handle, dn_cuda_dnn **d, const dn_cuda_dnn_shape *sh, int train);
/* y = conv(x, w). */
dn_status dn_cuda_dnn_forward(void *handle, const dn_cuda_dnn *d, const float *x, const float *w, float *y, void *ws,
                              size_t ws_bytes);
/* dw += the weight gradient, dx += the input gradient (either may be NULL). */
dn_status dn_cuda_dnn_backward(void *handle, const dn_cuda_dnn *d, const float *x, const float *dy, const float *w,
                               float *dw, float *dx, void *ws, size_t ws_bytes);

#endif /* DN_CUDA_DNN_H */
