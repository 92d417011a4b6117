/* Launchers of the device kernels (kernels.cu), callable from C. Each queues its
   kernel on `s` and returns the launch status (cudaGetLastError). Arrays are
   device memory, float32, NCHW. */
#ifndef DN_CUDA_KERNELS_H
#define DN_CUDA_KERNELS_H

#include <stddef.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The geometry of one im2col: input planes c x h x w, a size x size window. */
typedef struct dn_cuda_conv {
    int c, h, w, size, stride_x, stride_y, pad, dilation, out_h, out_w;
} dn_cuda_conv;

/* col (c*size*size, out_h*out_w) from im (c, h, w); pad counts in dilated steps. */
cudaError_t dn_cuda_im2col(const float *im, dn_cuda_conv g, float *col, cudaStream_t s);
/* x = act(x + bias[channel]) on (batch, c, spatial); bias may be NULL; act is a dn_act. */
cudaError_t dn_cuda_bias_act(float *x, const float *bias, int batch, int c, int spatial, int act, cudaStream_t s);
/* out = max over each window (size, stride, total padding split floor(p/2) before) of in. */
cudaError_t dn_cuda_maxpool(const float *in, float *out, int planes, int h, int w, int out_h, int out_w, int size,
                            int stride_x, int stride_y, int padding, cudaStream_t s);
/* out channel g = max over input channels k = g (mod out_c) at each pixel. */
cudaError_t dn_cuda_maxpool_depth(const float *in, float *out, int batch, int c, int spatial, int out_c,
                                  cudaStream_t s);
/* out[p] = mean of plane p of in. */
cudaError_t dn_cuda_avgpool(const float *in, float *out, int planes, int spatial, cudaStream_t s);
/* out[b*out_n + i] += src[b*src_n + i] for i < m. */
cudaError_t dn_cuda_add_prefix(const float *src, int src_n, float *out, int out_n, int m, int batch,
                               cudaStream_t s);
/* Nearest-neighbour upsampling by k (down: k x k block sums), times scale. */
cudaError_t dn_cuda_upsample(const float *in, float *out, int planes, int h, int w, int k, int down, float scale,
                             cudaStream_t s);
/* Softmax with temperature t over each of `rows` rows of n values. */
cudaError_t dn_cuda_softmax(const float *in, float *out, int rows, int n, float t, cudaStream_t s);
/* [yolo] inference on (batch * anchors * entries) planes of `spatial` values: logistic on every
   entry but w, h (all are kept raw with new_coords), then x, y scaled by scale_x_y about 0.5. */
cudaError_t dn_cuda_yolo(const float *in, float *out, int planes, int entries, int spatial, int new_coords,
                         float scale_x_y, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif /* DN_CUDA_KERNELS_H */
