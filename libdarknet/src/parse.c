/* Building a network from a parsed cfg (spec §1.2-§1.5): [net] options, option
   readers for the layer files, and the walk that hands each section to its layer. */
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "dn.h"

/* Keys every layer section may carry (spec §1.4); training-only ones are accepted and ignored. */
static const char *const common_keys[] = {"dont_update", "burnin_update", "train_only_bn", "clip", NULL};

dn_status dn_parse_fail(dn_parse_ctx *ctx, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return dn_fail(DN_ERR_CFG, "%s:%d: %s (layer %d): %s", ctx->cfg->path, ctx->sec->line, ctx->sec->type,
                   ctx->index, msg);
}

/* Record the first malformed value of the section; check_options raises it. */
static void bad_value(dn_parse_ctx *ctx, const dn_option *o, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void bad_value(dn_parse_ctx *ctx, const dn_option *o, const char *fmt, ...)
{
    if (ctx->opt_error[0]) return;
    char why[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    snprintf(ctx->opt_error, sizeof ctx->opt_error, "%s:%d: %s=%.64s in %s: %s", ctx->cfg->path, o->line, o->key,
             o->val, ctx->sec->type, why);
}

/* Whole-token numbers: *end is left after the digits, NULL when there are none or the value is out of range. */
static int scan_int(const char *s, const char **end)
{
    char *e;
    errno = 0;
    long v = strtol(s, &e, 10);
    *end = e == s || errno == ERANGE || v < INT_MIN || v > INT_MAX ? NULL : e;
    return *end ? (int)v : 0;
}

static float scan_float(const char *s, const char **end)
{
    char *e;
    double v = strtod(s, &e);
    *end = e == s || !isfinite(v) || fabs(v) > FLT_MAX ? NULL : e;
    return *end ? (float)v : 0;
}

/* A value ends at the end of the line or at an inline '#' comment. */
static int at_value_end(const char *p) { return *p == 0 || *p == '#'; }

int dn_opt_int(dn_parse_ctx *ctx, const char *key, int def)
{
    dn_option *o = dn_cfg_find(ctx->sec, key);
    if (!o) return def;
    const char *end;
    int v = scan_int(o->val, &end);
    if (end && at_value_end(end)) return v;
    bad_value(ctx, o, "not a whole number between %d and %d; write e.g. %s=1", INT_MIN, INT_MAX, key);
    return def;
}

float dn_opt_float(dn_parse_ctx *ctx, const char *key, float def)
{
    dn_option *o = dn_cfg_find(ctx->sec, key);
    if (!o) return def;
    const char *end;
    float v = scan_float(o->val, &end);
    if (end && at_value_end(end)) return v;
    bad_value(ctx, o, "not a finite number within the float range; write e.g. %s=0.001", key);
    return def;
}

const char *dn_opt_str(dn_parse_ctx *ctx, const char *key, const char *def)
{
    dn_option *o = dn_cfg_find(ctx->sec, key);
    return o ? o->val : def;
}

/* Comma-separated list of whole-token numbers; it ends at '#' (spec §1.1). */
static int opt_list(dn_parse_ctx *ctx, const char *key, int *ints, float *floats, int max)
{
    dn_option *o = dn_cfg_find(ctx->sec, key);
    if (!o) return 0;
    int n = 0;
    for (const char *p = o->val; !at_value_end(p); n++) {
        if (n == max) {
            dn_parse_fail(ctx, "%s= lists more than %d values", key, max);
            return -1;
        }
        const char *end;
        if (ints) ints[n] = scan_int(p, &end);
        else floats[n] = scan_float(p, &end);
        if (!end || (*end != ',' && !at_value_end(end))) {
            bad_value(ctx, o, "item %d is not a %s; write comma-separated numbers without empty items", n + 1,
                      ints ? "whole number in the int range" : "finite number");
            dn_fail(DN_ERR_CFG, "%s", ctx->opt_error);
            return -1;
        }
        p = *end == ',' ? end + 1 : end;
        if (*end == ',' && at_value_end(p)) {
            bad_value(ctx, o, "the list ends with ','; remove the trailing comma");
            dn_fail(DN_ERR_CFG, "%s", ctx->opt_error);
            return -1;
        }
    }
    return n;
}

int dn_opt_ints(dn_parse_ctx *ctx, const char *key, int *out, int max) { return opt_list(ctx, key, out, NULL, max); }

int dn_opt_floats(dn_parse_ctx *ctx, const char *key, float *out, int max) { return opt_list(ctx, key, NULL, out, max); }

void dn_opt_accept(dn_parse_ctx *ctx, const char *const *keys)
{
    for (; *keys; keys++) dn_cfg_find(ctx->sec, *keys);
}

static const char *activation_list(void)
{
    static char list[512];
    if (!list[0])
        for (int i = 0; i < DN_ACT_COUNT; i++) {
            strcat(list, i ? ", " : "");
            strcat(list, dn_act_name(i));
        }
    return list;
}

dn_status dn_opt_activation(dn_parse_ctx *ctx, const char *key, const char *def, dn_act *out)
{
    const char *name = dn_opt_str(ctx, key, def);
    int a = dn_act_from_name(name);
    if (a < 0)
        return dn_parse_fail(ctx, "unknown %s '%s' (an inline '#' comment is part of the value); use one of: %s",
                             key, name, activation_list());
    *out = (dn_act)a;
    return DN_OK;
}

dn_status dn_opt_layer_ref(dn_parse_ctx *ctx, const char *key, int ref, int *out)
{
    int idx = ref < 0 ? ctx->index + ref : ref;
    if (idx < 0 || idx >= ctx->index)
        return dn_parse_fail(ctx, "%s=%d refers to layer %d, but only layers 0..%d come before this one", key, ref,
                             idx, ctx->index - 1);
    *out = idx;
    return DN_OK;
}

dn_status dn_layer_set_inputs(dn_layer *l, const int *idx, int n)
{
    free(l->in_idx);
    if (!(l->in_idx = malloc(sizeof *l->in_idx * n))) return dn_fail(DN_ERR_OOM, "out of memory");
    memcpy(l->in_idx, idx, sizeof *idx * n);
    l->n_in = n;
    return DN_OK;
}

dn_status dn_require_image(dn_parse_ctx *ctx, const dn_layer *l)
{
    if (l->w <= 0 || l->h <= 0 || l->c <= 0)
        return dn_parse_fail(ctx, "the layer before must output an image, but its output is %d x %d x %d "
                             "(softmax, cost and connected layers do not)", l->w, l->h, l->c);
    return DN_OK;
}

static dn_status parse_policy(dn_parse_ctx *ctx, dn_network *net)
{
    static const char *const names[] = {"constant", "step", "steps", "exp", "poly", "sigmoid", "random", "sgdr"};
    const char *p = dn_opt_str(ctx, "policy", "constant");
    int found = -1;
    for (int i = 0; i < (int)(sizeof names / sizeof *names); i++)
        if (strcmp(p, names[i]) == 0) found = i;
    if (found < 0)
        return dn_parse_fail(ctx, "unknown policy '%s'; use constant, step, steps, exp, poly, sigmoid, random or sgdr",
                             p);
    net->policy = (dn_policy)found;
    net->step = dn_opt_int(ctx, "step", 1);
    net->scale = dn_opt_float(ctx, "scale", 1);
    net->gamma = dn_opt_float(ctx, "gamma", 1);
    net->learning_rate_min = dn_opt_float(ctx, "learning_rate_min", 1e-5f);
    net->sgdr_cycle = dn_opt_int(ctx, "sgdr_cycle", net->info.max_batches);
    net->sgdr_mult = dn_opt_int(ctx, "sgdr_mult", 2);
    if (net->policy == DN_POLICY_STEP && net->step < 1)
        return dn_parse_fail(ctx, "policy=step needs step >= 1 (batches between rate changes), not step=%d", net->step);
    if (net->policy == DN_POLICY_SGDR && net->sgdr_mult < 1)
        return dn_parse_fail(ctx, "sgdr_mult=%d must be >= 1 (the growth factor of each cycle)", net->sgdr_mult);
    /* an inference-only cfg may leave the cycle at max_batches=0; the rate then uses cycles of 1 */
    if (net->policy == DN_POLICY_SGDR && net->sgdr_cycle < 1 &&
        (net->info.train || dn_cfg_find(ctx->sec, "sgdr_cycle")))
        return dn_parse_fail(ctx, "policy=sgdr needs sgdr_cycle >= 1 (it defaults to max_batches), not %d",
                             net->sgdr_cycle);
    if (net->policy == DN_POLICY_STEPS || net->policy == DN_POLICY_SGDR) {
        int ns = dn_opt_ints(ctx, "steps", net->steps, DN_MAX_STEPS);
        int nc = dn_opt_floats(ctx, "scales", net->scales, DN_MAX_STEPS);
        if (ns < 0 || nc < 0) return DN_ERR_CFG;
        if (net->policy == DN_POLICY_STEPS && (ns == 0 || nc < ns))
            return dn_parse_fail(ctx, "policy=steps needs steps= and at least as many scales= (got %d steps, %d "
                                 "scales)", ns, nc);
        net->n_steps = ns < nc ? ns : nc;
    }
    return DN_OK;
}

/* Optimiser features this engine does not implement: refuse rather than train
   silently without them. Inference ignores them, as upstream does. (Batch mixing keys
   -- mosaic, mixup, cutmix, blur -- belong to the data loaders, which decide.) */
static dn_status refuse_unsupported_training(dn_parse_ctx *ctx, int train)
{
    static const char *const keys[] = {"adam", "ema_alpha", NULL};
    if (!train) {
        dn_opt_accept(ctx, keys);
        return DN_OK;
    }
    for (const char *const *k = keys; *k; k++)
        if (dn_opt_float(ctx, *k, 0) != 0)
            return dn_parse_fail(ctx, "%s= is not supported for training yet; remove it (or set it to 0) to train "
                                 "with plain SGD and no batch mixing", *k);
    return DN_OK;
}

/* [net] keys upstream reads for features outside this engine (GPU, detector
   training, charts) or ignores, as upstream cfgs carry them (spec §1.3). */
static const char *const net_ignored_keys[] = {
    "seq_scales", "sequential_subdivisions", "init_sequential_subdivisions", "gaussian_noise", "letter_box",
    "mosaic", "mosaic_bound", "mixup", "cutmix", "blur", "track", "augment_speed", "resize_step", "max_chart_loss", "B1", "B2", "eps", "loss_scale",
    "try_fix_nan", "weights_reject_freq", "equidistant_point", "badlabels_rejection_percentage",
    "num_sigmas_reject_badlabels", "use_cuda_graph", "dynamic_minibatch", "optimized_memory",
    "workspace_size_limit_MB", "contrastive", "contrastive_color", "contrastive_jit_flip", "unsupervised",
    "attention", "adversarial_lr", "show_receptive_field", "max_epochs", "seen", "center", "steps", "scales", NULL};

static dn_status parse_net(dn_parse_ctx *ctx, dn_network *net, int batch, int width, int height)
{
    dn_net_info *in = &net->info;
    in->cfg_batch = dn_opt_int(ctx, "batch", 1);
    in->subdivisions = dn_opt_int(ctx, "subdivisions", 1);
    int time_steps = dn_opt_int(ctx, "time_steps", 1);
    if (in->cfg_batch < 1 || in->subdivisions < 1 || time_steps < 1)
        return dn_parse_fail(ctx, "batch=%d, subdivisions=%d and time_steps=%d must all be >= 1", in->cfg_batch,
                             in->subdivisions, time_steps);
    if (batch > 0) {
        in->batch = batch;
        in->train = 0;
    } else if (net->estimate_minibatch > 0) {
        in->batch = net->estimate_minibatch;
        in->train = 1;
    } else {
        in->batch = in->cfg_batch / in->subdivisions * time_steps;
        in->train = 1;
        if (in->batch < 1)
            return dn_parse_fail(ctx, "batch=%d is smaller than subdivisions=%d: the mini-batch would be empty",
                                 in->cfg_batch, in->subdivisions);
    }
    in->width = dn_opt_int(ctx, "width", 0);
    in->height = dn_opt_int(ctx, "height", 0);
    if (width > 0 && height > 0) {
        in->width = width;
        in->height = height;
    }
    in->channels = dn_opt_int(ctx, "channels", 0);
    if (in->width < 0 || in->height < 0 || in->channels < 0)
        return dn_parse_fail(ctx, "width, height and channels must be positive");
    if ((int64_t)in->width * in->height * in->channels > (1L << 28))
        return dn_parse_fail(ctx, "input %d x %d x %d is too large", in->width, in->height, in->channels);
    const int image = in->width * in->height * in->channels;
    in->inputs = dn_opt_int(ctx, "inputs", image);
    if (in->inputs > (1 << 28))
        return dn_parse_fail(ctx, "inputs=%d is too large (at most %d)", in->inputs, 1 << 28);
    if (image == 0 && in->inputs > 0 && in->width + in->height + in->channels == 0) {
        /* a non-image network: its input is a 1 x 1 image of `inputs` channels */
        in->width = in->height = 1;
        in->channels = in->inputs;
    } else if (image == 0 || in->inputs != image) {
        return dn_parse_fail(ctx, "inputs=%d does not match width x height x channels = %d x %d x %d; set all three "
                             "to positive values and drop inputs= (it is their product)", in->inputs, in->width,
                             in->height, in->channels);
    }
    in->max_batches = dn_opt_int(ctx, "max_batches", 0);
    in->learning_rate = dn_opt_float(ctx, "learning_rate", .001f);
    in->momentum = dn_opt_float(ctx, "momentum", .9f);
    in->decay = dn_opt_float(ctx, "decay", .0001f);
    in->burn_in = dn_opt_int(ctx, "burn_in", 0);
    in->power = dn_opt_float(ctx, "power", 4);
    in->angle = dn_opt_float(ctx, "angle", 0);
    in->aspect = dn_opt_float(ctx, "aspect", 1);
    in->saturation = dn_opt_float(ctx, "saturation", 1);
    in->exposure = dn_opt_float(ctx, "exposure", 1);
    in->hue = dn_opt_float(ctx, "hue", 0);
    in->min_crop = dn_opt_int(ctx, "min_crop", in->width);
    in->max_crop = dn_opt_int(ctx, "max_crop", in->width * 2);
    in->flip = dn_opt_int(ctx, "flip", 1);
    in->label_smooth_eps = dn_opt_float(ctx, "label_smooth_eps", 0);
    DN_TRY(refuse_unsupported_training(ctx, in->train));
    DN_TRY(parse_policy(ctx, net));
    dn_opt_accept(ctx, net_ignored_keys);
    return DN_OK;
}

static int is_unsupported(const char *type)
{
    for (const char *const *u = dn_unsupported_sections; *u; u++)
        if (strcmp(*u, type) == 0) return 1;
    return 0;
}

/* Index of the last layer marked stopbackward=1; layers before it are frozen (spec §1.4). */
static int last_stopbackward(const dn_cfg *cfg)
{
    int last = -1;
    for (int i = 1; i < cfg->n_sections; i++)
        for (int j = 0; j < cfg->sections[i].n_opts; j++)
            if (strcmp(cfg->sections[i].opts[j].key, "stopbackward") == 0 && atoi(cfg->sections[i].opts[j].val))
                last = i - 1;
    return last;
}

/* The section's first malformed number wins over the status its parser returned;
   then any key nobody read is an error. */
static dn_status check_options(dn_parse_ctx *ctx, dn_status st)
{
    if (ctx->opt_error[0]) return dn_fail(DN_ERR_CFG, "%s", ctx->opt_error);
    if (st != DN_OK) return st;
    const int is_net = ctx->sec == ctx->cfg->sections;
    char where[32] = "";
    if (!is_net) snprintf(where, sizeof where, " (layer %d)", ctx->index);
    for (int i = 0; i < ctx->sec->n_opts; i++) {
        dn_option *o = &ctx->sec->opts[i], *first = o;
        for (int j = 0; j < i && first == o; j++)
            if (strcmp(ctx->sec->opts[j].key, o->key) == 0) first = &ctx->sec->opts[j];
        if (first != o) {
            /* upstream cfgs repeat [net] keys (testing/training blocks): the first wins, as upstream */
            if (is_net) continue;
            return dn_fail(DN_ERR_CFG, "%s:%d: duplicate key '%s' in %s (layer %d); line %d sets it already and "
                           "wins: remove one", ctx->cfg->path, o->line, o->key, ctx->sec->type, ctx->index,
                           first->line);
        }
        if (!o->used)
            return dn_fail(DN_ERR_CFG, "%s:%d: unknown key '%s' in %s%s; check its spelling or remove it",
                           ctx->cfg->path, o->line, o->key, ctx->sec->type, where);
    }
    return DN_OK;
}

/* One guard for every layer kind: shapes computed in 64 bits must fit the int
   indexes the layers use, whatever arithmetic the layer's parser did. */
static dn_status check_sizes(dn_parse_ctx *ctx, const dn_layer *l)
{
    const int64_t image = (int64_t)l->out_w * l->out_h * l->out_c, per_batch = (int64_t)l->batch * l->outputs;
    if (l->out_w < 0 || l->out_h < 0 || l->out_c < 0 || l->outputs <= 0)
        return dn_parse_fail(ctx, "the layer would produce %d x %d x %d (%d values per image); check its size, "
                             "stride and padding", l->out_w, l->out_h, l->out_c, l->outputs);
    if (image > DN_MAX_TENSOR || per_batch > DN_MAX_TENSOR)
        return dn_parse_fail(ctx, "the output %d x %d x %d x batch %d is larger than the limit of %d floats; check "
                             "its size, stride and padding, or lower batch", l->out_w, l->out_h, l->out_c, l->batch,
                             DN_MAX_TENSOR);
    if (l->ops->n_weights && l->ops->n_weights(l) > DN_MAX_TENSOR)
        return dn_parse_fail(ctx, "the layer has more than %d weights", DN_MAX_TENSOR);
    return DN_OK;
}

static dn_status parse_layer(dn_parse_ctx *ctx, dn_network *net, dn_layer *l, int frozen_before)
{
    dn_layer_kind kind;
    const dn_layer_ops *ops = dn_layer_ops_find(ctx->sec->type, &kind);
    if (!ops) {
        if (is_unsupported(ctx->sec->type))
            return dn_parse_fail(ctx, "darknetpy does not support %s layers yet", ctx->sec->type);
        return dn_parse_fail(ctx, "unknown section type");
    }
    l->ops = ops;
    l->kind = kind;
    l->index = ctx->index;
    l->batch = net->info.batch;
    if (ctx->index == 0) {
        l->w = net->info.width;
        l->h = net->info.height;
        l->c = net->info.channels;
        l->inputs = net->info.inputs;
    } else {
        const dn_layer *prev = &net->layers[ctx->index - 1];
        l->w = prev->out_w;
        l->h = prev->out_h;
        l->c = prev->out_c;
        l->inputs = prev->outputs;
    }
    l->lr_mult = dn_opt_float(ctx, "learning_rate", 1);
    l->stopbackward = dn_opt_int(ctx, "stopbackward", 0);
    l->onlyforward = dn_opt_int(ctx, "onlyforward", 0);
    l->dontload = dn_opt_int(ctx, "dontload", 0);
    l->dontloadscales = dn_opt_int(ctx, "dontloadscales", 0);
    dn_opt_accept(ctx, common_keys);
    l->train = net->info.train && ctx->index >= frozen_before;
    DN_TRY(check_options(ctx, ops->parse(l, ctx)));
    if (!l->n_in) {
        const int prev = ctx->index - 1;
        DN_TRY(dn_layer_set_inputs(l, &prev, 1));
    }
    DN_TRY(check_sizes(ctx, l));
    const dn_backend *b = net->ctx.backend;
    if (ops->in_place) {
        const dn_layer *prev = ctx->index ? &net->layers[ctx->index - 1] : NULL;
        if (!prev) return dn_parse_fail(ctx, "an in-place layer cannot be the first layer");
        l->output = prev->output;
        l->delta = prev->delta;
        l->output_kept = prev->output_kept;
    } else if (net->info.train) { /* inference outputs are placed by dn_plan_outputs */
        DN_TRY(b->alloc(&l->output, (size_t)l->batch * l->outputs, "layer outputs"));
        DN_TRY(b->alloc(&l->delta, (size_t)l->batch * l->outputs, "layer deltas"));
        l->output_kept = 1;
    }
    const dn_kernels *k = b->kernels[kind];
    if (k && k->workspace) {
        size_t ws = k->workspace(l, net->info.train, SIZE_MAX);
        if (ws > DN_MAX_TENSOR)
            return dn_parse_fail(ctx, "the layer needs %zu floats of workspace, more than the limit of %d; lower "
                                 "batch or the input size", ws, DN_MAX_TENSOR);
        l->scratch.n = ws;
        if (ws > *ctx->workspace && net->info.train) *ctx->workspace = ws; /* else in the arena */
    }
    return DN_OK;
}

/* In training every loss layer except a detection head (its truth is a box list) reads the truth
   vectors, which have the output layer's size. */
static dn_status check_loss_layers(const dn_cfg *cfg, const dn_network *net)
{
    if (!net->info.train) return DN_OK;
    const int out = dn_network_output_layer(net);
    for (int i = 0; i < net->n; i++) {
        const dn_layer *l = &net->layers[i];
        if (l->has_cost && !(dn_layer_caps(l->kind) & DN_CAP_DETECTION) && l->outputs != net->layers[out].outputs)
            return dn_fail(DN_ERR_CFG, "%s:%d: %s (layer %d) computes a loss over its %d outputs, but training truth "
                           "has the %d values of the output layer %d; set noloss=1 there or end the network with "
                           "it", cfg->path, cfg->sections[i + 1].line, cfg->sections[i + 1].type, i, l->outputs,
                           net->layers[out].outputs, out);
    }
    return DN_OK;
}

dn_status dn_network_parse(const dn_cfg *cfg, int batch, int width, int height, dn_network *net)
{
    dn_section *first = &cfg->sections[0];
    size_t workspace = 0;
    dn_parse_ctx ctx = {cfg, first, NULL, 0, 0, &net->ctx.rng, &workspace, ""};
    if (strcmp(first->type, "[net]") != 0 && strcmp(first->type, "[network]") != 0)
        return dn_fail(DN_ERR_CFG, "%s:%d: the first section is %s; it must be [net] or [network]", cfg->path,
                       first->line, first->type);
    DN_TRY(check_options(&ctx, parse_net(&ctx, net, batch, width, height)));
    ctx.train = net->info.train;
    ctx.estimate = net->estimate_minibatch > 0;
    ctx.net_w = net->info.width;
    ctx.net_h = net->info.height;
    net->n = cfg->n_sections - 1;
    if (net->n == 0) return dn_fail(DN_ERR_CFG, "%s: the cfg has a [net] section but no layers", cfg->path);
    net->layers = calloc(net->n, sizeof *net->layers);
    if (!net->layers) return dn_fail(DN_ERR_OOM, "out of memory building %s", cfg->path);
    ctx.layers = net->layers;
    int frozen_before = last_stopbackward(cfg);
    for (int i = 0; i < net->n; i++) {
        ctx.sec = &cfg->sections[i + 1];
        ctx.index = i;
        ctx.opt_error[0] = 0;
        DN_TRY(parse_layer(&ctx, net, &net->layers[i], frozen_before));
    }
    DN_TRY(check_loss_layers(cfg, net));
    return net->ctx.backend->alloc(&net->ctx.workspace, workspace, "the convolution workspace");
}
