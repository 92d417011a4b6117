/* Building a network from a parsed cfg (spec §1.2-§1.5): [net] options, option
   readers for the layer files, and the walk that hands each section to its layer. */
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

int dn_opt_int(dn_parse_ctx *ctx, const char *key, int def)
{
    dn_option *o = dn_cfg_find(ctx->sec, key);
    return o ? atoi(o->val) : def;
}

float dn_opt_float(dn_parse_ctx *ctx, const char *key, float def)
{
    dn_option *o = dn_cfg_find(ctx->sec, key);
    return o ? (float)atof(o->val) : def;
}

const char *dn_opt_str(dn_parse_ctx *ctx, const char *key, const char *def)
{
    dn_option *o = dn_cfg_find(ctx->sec, key);
    return o ? o->val : def;
}

/* Comma-separated list; items are parsed with atoi/atof and counting stops at '#' (spec §1.1). */
static int opt_list(dn_parse_ctx *ctx, const char *key, int *ints, float *floats, int max)
{
    dn_option *o = dn_cfg_find(ctx->sec, key);
    if (!o) return 0;
    int n = 0;
    for (const char *p = o->val; *p && *p != '#'; n++) {
        if (n == max) {
            dn_parse_fail(ctx, "%s= lists more than %d values", key, max);
            return -1;
        }
        if (ints) ints[n] = atoi(p);
        else floats[n] = (float)atof(p);
        p = strchr(p, ',');
        if (!p) { n++; break; }
        p++;
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

/* Training features this engine does not implement: refuse rather than train
   silently without them. Inference ignores them, as upstream does. */
static dn_status refuse_unsupported_training(dn_parse_ctx *ctx, int train)
{
    static const char *const keys[] = {"adam", "mixup", "cutmix", "mosaic", "blur", "ema_alpha", NULL};
    if (!train) return DN_OK;
    for (const char *const *k = keys; *k; k++)
        if (dn_opt_float(ctx, *k, 0) != 0)
            return dn_parse_fail(ctx, "%s= is not supported for training yet; remove it (or set it to 0) to train "
                                 "with plain SGD and no batch mixing", *k);
    return DN_OK;
}

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
    if ((long)in->width * in->height * in->channels > (1L << 28))
        return dn_parse_fail(ctx, "input %d x %d x %d is too large", in->width, in->height, in->channels);
    in->inputs = dn_opt_int(ctx, "inputs", in->width * in->height * in->channels);
    if (in->inputs <= 0)
        return dn_parse_fail(ctx, "set width, height and channels (or inputs) to positive values");
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
    return parse_policy(ctx, net);
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

static dn_status check_unused(dn_parse_ctx *ctx)
{
    for (int i = 0; i < ctx->sec->n_opts; i++) {
        dn_option *o = &ctx->sec->opts[i];
        if (!o->used)
            return dn_fail(DN_ERR_CFG, "%s:%d: unknown key '%s' in %s (layer %d); check its spelling or remove it",
                           ctx->cfg->path, o->line, o->key, ctx->sec->type, ctx->index);
    }
    return DN_OK;
}

static dn_status parse_layer(dn_parse_ctx *ctx, dn_network *net, dn_layer *l, int frozen_before)
{
    dn_layer_kind kind;
    const dn_layer_ops *ops = dn_layer_ops_find(ctx->sec->type, &kind);
    if (!ops) {
        if (is_unsupported(ctx->sec->type))
            return dn_parse_fail(ctx, "darknetpy does not support %s layers yet (recurrent, local, crop, region "
                                 "and detection layers are not implemented)", ctx->sec->type);
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
    DN_TRY(ops->parse(l, ctx));
    DN_TRY(check_unused(ctx));
    if (!l->n_in) {
        const int prev = ctx->index - 1;
        DN_TRY(dn_layer_set_inputs(l, &prev, 1));
    }
    if (l->outputs <= 0)
        return dn_parse_fail(ctx, "the layer would produce %d values per image", l->outputs);
    const dn_backend *b = net->ctx.backend;
    if (ops->in_place) {
        const dn_layer *prev = ctx->index ? &net->layers[ctx->index - 1] : NULL;
        if (!prev) return dn_parse_fail(ctx, "an in-place layer cannot be the first layer");
        l->output = prev->output;
        l->delta = prev->delta;
    } else {
        DN_TRY(b->alloc(&l->output, (size_t)l->batch * l->outputs, "layer outputs"));
        if (net->info.train) DN_TRY(b->alloc(&l->delta, (size_t)l->batch * l->outputs, "layer deltas"));
    }
    const dn_kernels *k = b->kernels[kind];
    if (k && k->workspace) {
        size_t ws = k->workspace(l, net->info.train);
        if (ws > *ctx->workspace) *ctx->workspace = ws;
    }
    return DN_OK;
}

dn_status dn_network_parse(const dn_cfg *cfg, int batch, int width, int height, dn_network *net)
{
    dn_section *first = &cfg->sections[0];
    size_t workspace = 0;
    dn_parse_ctx ctx = {cfg, first, NULL, 0, 0, &net->ctx.rng, &workspace};
    if (strcmp(first->type, "[net]") != 0 && strcmp(first->type, "[network]") != 0)
        return dn_fail(DN_ERR_CFG, "%s:%d: the first section is %s; it must be [net] or [network]", cfg->path,
                       first->line, first->type);
    DN_TRY(parse_net(&ctx, net, batch, width, height));
    ctx.train = net->info.train;
    net->n = cfg->n_sections - 1;
    if (net->n == 0) return dn_fail(DN_ERR_CFG, "%s: the cfg has a [net] section but no layers", cfg->path);
    net->layers = calloc(net->n, sizeof *net->layers);
    if (!net->layers) return dn_fail(DN_ERR_OOM, "out of memory building %s", cfg->path);
    ctx.layers = net->layers;
    int frozen_before = last_stopbackward(cfg);
    for (int i = 0; i < net->n; i++) {
        ctx.sec = &cfg->sections[i + 1];
        ctx.index = i;
        DN_TRY(parse_layer(&ctx, net, &net->layers[i], frozen_before));
    }
    return net->ctx.backend->alloc(&net->ctx.workspace, workspace, "the convolution workspace");
}
