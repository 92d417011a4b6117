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
/* out[b*out_n + i] += alpha * src[b*src_n + i] for i < m. */
cudaError_t dn_cuda_add_prefix(const float *src, int src_n, float *out, int out_n, int m, int batch, float alpha,
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


/* ---- training (train_kernels.cu) ------------------------------------------------ */

/* delta *= f'(.) on (batch, c, spatial) given the output y and the pre-activation x (NULL
   where the kind does not need it); the normalize_channels kinds mix the channels of a pixel. */
cudaError_t dn_cuda_act_grad(const float *x, const float *y, float *delta, int batch, int c, int spatial, int act,
                             cudaStream_t s);
/* Batch norm of y (batch, n, spatial) in place, bias not included. training: batch statistics
   (biased variance) into batch_mean/batch_var, x_norm kept, the rolling mean/var blended with
   weight `rolling` (unbiased variance); else the rolling statistics. */
cudaError_t dn_cuda_bn_forward(float *y, float *x_norm, float *batch_mean, float *batch_var, float *mean, float *var,
                               const float *scales, int batch, int n, int spatial, int training, float rolling,
                               cudaStream_t s);
/* Per channel of delta (batch, n, spatial): bias_updates += sum of delta (may be NULL); with
   x_norm also scale_updates += sum of delta * x_norm and delta <- the input gradient of batch norm. */
cudaError_t dn_cuda_bias_bn_backward(float *delta, const float *x_norm, const float *scales, const float *batch_var,
                                     float *bias_updates, float *scale_updates, int batch, int n, int spatial,
                                     cudaStream_t s);
/* im (c, h, w) += col2im(col), the transpose of dn_cuda_im2col. */
cudaError_t dn_cuda_col2im_add(const float *col, dn_cuda_conv g, float *im, cudaStream_t s);
/* u -= decay * w; w += step * u; u *= momentum. */
cudaError_t dn_cuda_sgd(float *w, float *u, size_t n, float step, float decay, float momentum, cudaStream_t s);
/* in_delta at each window's maximum (found again in `in`) += delta. */
cudaError_t dn_cuda_maxpool_backward(const float *in, const float *delta, float *in_delta, int planes, int h, int w,
                                     int out_h, int out_w, int size, int stride_x, int stride_y, int padding,
                                     cudaStream_t s);
cudaError_t dn_cuda_maxpool_depth_backward(const float *in, const float *delta, float *in_delta, int batch, int c,
                                           int spatial, int out_c, cudaStream_t s);
/* in_delta[p, i] += delta[p] / spatial. */
cudaError_t dn_cuda_avgpool_backward(const float *delta, float *in_delta, int planes, int spatial, cudaStream_t s);
/* The transpose of dn_cuda_upsample, added into in_delta (planes x h x w, the input's size). */
cudaError_t dn_cuda_upsample_backward(const float *delta, float *in_delta, int planes, int h, int w, int k, int down,
                                      float scale, cudaStream_t s);
/* delta = t - y over n values; *sum (device) = sum of -log(y) where t != 0. */
cudaError_t dn_cuda_softmax_loss(const float *y, const float *t, float *delta, size_t n, double *sum, cudaStream_t s);
/* [cost] type (0 sse, 1 masked, 2 smooth): delta and *sum (device) = the error sum. */
cudaError_t dn_cuda_cost_loss(const float *x, const float *t, float *delta, size_t n, int type, double *sum,
                              cudaStream_t s);
/* x[i] = draws[i] < p ? 0 : x[i] * scale. */
cudaError_t dn_cuda_dropout(float *x, const float *draws, size_t n, float p, float scale, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif /* DN_CUDA_KERNELS_H */
