/* The network: build, free, forward, backward, update and the learning-rate
   schedule. Generic code walks the layer table and never branches on a type. */
#include <math.h>
#include <string.h>

#include "dn.h"

void dn_network_free(dn_network *net)
{
    if (!net) return;
    for (int i = 0; i < net->n; i++) {
        dn_layer *l = &net->layers[i];
        if (!l->ops) break;
        if (l->ops->free) l->ops->free(l);
        free(l->p);
        if (!l->ops->in_place) {
            free(l->output);
            free(l->delta);
        }
    }
    free(net->layers);
    free(net->input);
    free(net->truth);
    free(net->input_delta);
    free(net->workspace);
    free(net->cfg_path);
    free(net);
}

static int output_layer(const dn_network *net)
{
    int i = net->n - 1;
    while (i > 0 && strcmp(net->layers[i].ops->name, "cost") == 0) i--;
    return i;
}

dn_status dn_network_load_cfg(const char *cfg_path, int batch, dn_network **out)
{
    *out = NULL;
    dn_cfg *cfg;
    DN_TRY(dn_cfg_read(cfg_path, &cfg));
    dn_network *net = calloc(1, sizeof *net);
    dn_status st = net ? DN_OK : dn_fail(DN_ERR_OOM, "out of memory loading %s", cfg_path);
    if (st == DN_OK && !(net->cfg_path = strdup(cfg_path))) st = dn_fail(DN_ERR_OOM, "out of memory");
    if (st == DN_OK) dn_network_seed(net, 0); /* before parsing: layers draw their initial weights */
    if (st == DN_OK) st = dn_network_parse(cfg, batch, net);
    dn_cfg_free(cfg);
    if (st == DN_OK) st = dn_alloc_floats(&net->input, (size_t)net->info.batch * net->info.inputs, "the input");
    if (st != DN_OK) {
        dn_network_free(net);
        return st;
    }
    net->info.n_layers = net->n;
    net->info.output_layer = output_layer(net);
    net->info.outputs = net->layers[net->info.output_layer].outputs;
    *out = net;
    return DN_OK;
}

void dn_network_seed(dn_network *net, uint64_t seed) { net->rng.s = seed ? seed : 0x9E3779B97F4A7C15ULL; }

dn_status dn_network_info(const dn_network *net, dn_net_info *info)
{
    *info = net->info;
    return DN_OK;
}

dn_status dn_network_layer_info(const dn_network *net, int index, dn_layer_info *info)
{
    if (index < 0 || index >= net->n)
        return dn_fail(DN_ERR_SHAPE, "layer index %d out of range: the network has %d layers", index, net->n);
    const dn_layer *l = &net->layers[index];
    memset(info, 0, sizeof *info);
    info->index = index;
    info->type = l->ops->name;
    info->in_c = l->c;
    info->in_h = l->h;
    info->in_w = l->w;
    info->inputs = l->inputs;
    info->out_c = l->out_c;
    info->out_h = l->out_h;
    info->out_w = l->out_w;
    info->outputs = l->outputs;
    info->batch_normalize = l->batch_normalize;
    info->n_weights = l->ops->n_weights ? (int)l->ops->n_weights(l) : 0;
    info->bflops = l->bflops;
    l->ops->describe(l, info->summary, sizeof info->summary);
    return DN_OK;
}

dn_status dn_network_layer_output(const dn_network *net, int index, const float **data, int *count)
{
    if (index < 0 || index >= net->n)
        return dn_fail(DN_ERR_SHAPE, "layer index %d out of range: the network has %d layers", index, net->n);
    *data = net->layers[index].output;
    *count = net->layers[index].batch * net->layers[index].outputs;
    return DN_OK;
}

dn_status dn_network_set_counters(dn_network *net, uint64_t seen, int cur_iteration)
{
    net->info.seen = seen;
    net->info.cur_iteration = cur_iteration;
    return DN_OK;
}

dn_status dn_network_fuse(dn_network *net)
{
    for (int i = 0; i < net->n; i++)
        if (net->layers[i].ops->fuse) net->layers[i].ops->fuse(&net->layers[i]);
    net->info.fused = 1;
    return DN_OK;
}

static void forward_all(dn_network *net)
{
    const float *in = net->input;
    for (int i = 0; i < net->n; i++) {
        dn_layer *l = &net->layers[i];
        if (net->training && l->delta && !l->ops->in_place)
            memset(l->delta, 0, sizeof(float) * l->batch * l->outputs);
        l->ops->forward(l, net, in);
        in = l->output;
    }
}

dn_status dn_network_forward(dn_network *net, const float *input, int n)
{
    if (n < 1 || n > net->info.batch)
        return dn_fail(DN_ERR_SHAPE, "forward of %d samples on a network built for batch %d", n, net->info.batch);
    memcpy(net->input, input, sizeof(float) * n * net->info.inputs);
    if (n < net->info.batch)
        memset(net->input + (size_t)n * net->info.inputs, 0,
               sizeof(float) * (net->info.batch - n) * net->info.inputs);
    net->training = 0;
    forward_all(net);
    return DN_OK;
}

/* Learning rate for the current batch (spec §4.6). */
float dn_network_current_rate(const dn_network *net)
{
    const dn_net_info *in = &net->info;
    int b = (int)(in->seen / ((uint64_t)in->batch * in->subdivisions));
    float lr = in->learning_rate;
    if (b < in->burn_in) return lr * powf((float)b / in->burn_in, in->power);
    switch (net->policy) {
    case DN_POLICY_CONSTANT: return lr;
    case DN_POLICY_STEP: return lr * powf(net->scale, (float)(b / net->step));
    case DN_POLICY_STEPS:
        for (int i = 0; i < net->n_steps && net->steps[i] <= b; i++) lr *= net->scales[i];
        return lr;
    case DN_POLICY_EXP: return lr * powf(net->gamma, (float)b);
    case DN_POLICY_POLY: return lr * powf(1.f - (float)b / in->max_batches, in->power);
    case DN_POLICY_RANDOM: {
        /* a draw per batch, so the rate logged after an update is the one it used */
        dn_rng r = {0x9E3779B97F4A7C15ULL * (uint64_t)(b + 1)};
        return lr * powf(dn_rng_uniform(&r, 0, 1), in->power);
    }
    case DN_POLICY_SIGMOID: return lr / (1.f + expf(net->gamma * (b - net->step)));
    case DN_POLICY_SGDR: {
        /* parse guarantees mult >= 1; an inference cfg may leave the cycle at 0 (then 1).
           The loop runs at most ~31 times: cycles of constant length are skipped by division. */
        int64_t start = 0, len = net->sgdr_cycle > 0 ? net->sgdr_cycle : 1;
        if (net->sgdr_mult <= 1) {
            if (b > len) start = (b - 1) / len * len;
        } else {
            while (start + len < b) {
                start += len;
                len *= net->sgdr_mult;
            }
        }
        return net->learning_rate_min +
               .5f * (lr - net->learning_rate_min) * (1.f + cosf((b - start) * 3.14159265f / len));
    }
    }
    return lr;
}

static double network_cost(const dn_network *net)
{
    double sum = 0;
    int count = 0;
    for (int i = 0; i < net->n; i++)
        if (net->layers[i].has_cost) {
            sum += net->layers[i].cost;
            count++;
        }
    return count ? sum / count : 0;
}

/* input_delta: where layer 0 puts the gradient of the input, or NULL. */
static void backward_all(dn_network *net, float *input_delta)
{
    for (int i = net->n - 1; i >= 0; i--) {
        dn_layer *l = &net->layers[i];
        if (l->stopbackward) break;
        if (l->onlyforward || !l->ops->backward) continue;
        const float *in = i ? net->layers[i - 1].output : net->input;
        float *in_delta = i ? net->layers[i - 1].delta : input_delta;
        l->ops->backward(l, net, in, in_delta);
    }
}

/* Check that the network can train and size the truth buffer. */
static dn_status prepare_training(dn_network *net, int truth_size)
{
    const dn_net_info *in = &net->info;
    if (!in->train)
        return dn_fail(DN_ERR_UNSUPPORTED, "this network was built for inference; build it with batch=None (the "
                       "cfg's batch) to train");
    if (truth_size != net->layers[in->output_layer].outputs)
        return dn_fail(DN_ERR_SHAPE, "truth vectors have %d values but the network outputs %d", truth_size,
                       net->layers[in->output_layer].outputs);
    if (!net->truth || net->truth_size != truth_size) {
        free(net->truth);
        net->truth_size = truth_size;
        DN_TRY(dn_alloc_floats(&net->truth, (size_t)in->batch * truth_size, "truth vectors"));
    }
    return DN_OK;
}

/* Training forward and backward of one mini-batch; returns its network cost. */
static double forward_backward(dn_network *net, const float *x, const float *y, float *input_delta)
{
    const dn_net_info *in = &net->info;
    memcpy(net->input, x, sizeof(float) * in->batch * in->inputs);
    memcpy(net->truth, y, sizeof(float) * in->batch * net->truth_size);
    net->training = 1;
    forward_all(net);
    backward_all(net, input_delta);
    net->training = 0;
    return network_cost(net);
}

static const char *const param_names[] = {"weights", "biases", "scales", "rolling_mean", "rolling_variance"};

dn_status dn_network_param(dn_network *net, int index, const char *name, float **data, float **delta, int *count)
{
    if (index < 0 || index >= net->n)
        return dn_fail(DN_ERR_SHAPE, "layer index %d out of range: the network has %d layers", index, net->n);
    dn_layer *l = &net->layers[index];
    size_t n = 0;
    *delta = NULL;
    *data = l->ops->param ? l->ops->param(l, name, delta, &n) : NULL;
    if (!*data)
        return dn_fail(DN_ERR_SHAPE, "layer %d (%s) has no parameter '%s'", index, l->ops->name, name);
    *count = (int)n;
    return DN_OK;
}

/* Zero every parameter's update accumulator (momentum included). */
static void reset_updates(dn_network *net)
{
    for (int i = 0; i < net->n; i++) {
        dn_layer *l = &net->layers[i];
        for (size_t k = 0; l->ops->param && k < sizeof param_names / sizeof *param_names; k++) {
            float *delta = NULL;
            size_t count = 0;
            if (l->ops->param(l, param_names[k], &delta, &count) && delta) memset(delta, 0, sizeof(float) * count);
        }
    }
}

dn_status dn_network_backward(dn_network *net, const float *x, const float *y, int truth_size, double *loss,
                              float *input_delta)
{
    DN_TRY(prepare_training(net, truth_size));
    const size_t n_in = (size_t)net->info.batch * net->info.inputs;
    if (input_delta && !net->input_delta) DN_TRY(dn_alloc_floats(&net->input_delta, n_in, "the input delta"));
    reset_updates(net);
    if (input_delta) memset(net->input_delta, 0, sizeof(float) * n_in);
    *loss = forward_backward(net, x, y, input_delta ? net->input_delta : NULL);
    if (input_delta) memcpy(input_delta, net->input_delta, sizeof(float) * n_in);
    return DN_OK;
}

dn_status dn_network_train_step(dn_network *net, const float *x, const float *y, int truth_size, float *loss)
{
    dn_net_info *in = &net->info;
    DN_TRY(prepare_training(net, truth_size));
    double total = 0;
    for (int s = 0; s < in->subdivisions; s++) {
        in->seen += in->batch;
        total += forward_backward(net, x + (size_t)s * in->batch * in->inputs, y + (size_t)s * in->batch * truth_size,
                                  NULL);
    }
    in->cur_iteration++;
    dn_update up = {in->batch * in->subdivisions, dn_network_current_rate(net), in->momentum, in->decay};
    for (int i = 0; i < net->n; i++) {
        dn_layer *l = &net->layers[i];
        if (l->train && l->ops->update) l->ops->update(l, &up);
    }
    in->fused = 0;
    *loss = (float)(total / (in->subdivisions * in->batch));
    return DN_OK;
}
