/* Detection records (spec D1): the container every detection head appends to,
   upstream's letterbox correction, and get_network_boxes over all heads. */
#include <string.h>

#include "dn.h"

void dn_detections_free(dn_detections *d)
{
    if (!d) return;
    free(d->bbox);
    free(d->objectness);
    free(d->prob);
    memset(d, 0, sizeof *d);
}

static dn_status grow(dn_detections *d)
{
    const int cap = d->capacity ? 2 * d->capacity : 256;
    const size_t per = d->classes > 0 ? (size_t)d->classes : 1;
    float *bbox = realloc(d->bbox, sizeof(float) * 4 * cap);
    if (bbox) d->bbox = bbox;
    float *obj = realloc(d->objectness, sizeof(float) * cap);
    if (obj) d->objectness = obj;
    float *prob = realloc(d->prob, sizeof(float) * per * cap);
    if (prob) d->prob = prob;
    if (!bbox || !obj || !prob) return dn_fail(DN_ERR_OOM, "out of memory for %d detection records", cap);
    d->capacity = cap;
    return DN_OK;
}

float *dn_detections_add(dn_detections *d, float x, float y, float w, float h, float objectness)
{
    if (d->n == d->capacity && grow(d) != DN_OK) return NULL;
    float *b = d->bbox + 4 * (size_t)d->n;
    b[0] = x;
    b[1] = y;
    b[2] = w;
    b[3] = h;
    d->objectness[d->n] = objectness;
    float *prob = d->prob + (size_t)d->classes * d->n++;
    memset(prob, 0, sizeof(float) * d->classes);
    return prob;
}

void dn_correct_boxes(dn_detections *d, int from, const dn_box_query *q)
{
    const int W = q->net_w, H = q->net_h, iw = q->img_w, ih = q->img_h;
    int nw = W, nh = H;
    if (q->letter) {
        if ((float)W / iw < (float)H / ih) {
            nh = ih * W / iw;
        } else {
            nw = iw * H / ih;
        }
    }
    const float dw = (float)(W - nw), dh = (float)(H - nh);
    const float rw = (float)nw / W, rh = (float)nh / H;
    for (int i = from; i < d->n; i++) {
        float *b = d->bbox + 4 * (size_t)i;
        b[0] = (float)((b[0] - dw / 2. / W) / rw);
        b[1] = (float)((b[1] - dh / 2. / H) / rh);
        b[2] *= 1 / rw;
        b[3] *= 1 / rh;
        if (!q->relative) {
            b[0] *= iw;
            b[2] *= iw;
            b[1] *= ih;
            b[3] *= ih;
        }
    }
}

dn_status dn_network_detector_info(const dn_network *net, dn_detector_info *info)
{
    if (!net || !info) return dn_fail(DN_ERR_SHAPE, "dn_network_detector_info: NULL argument");
    memset(info, 0, sizeof *info);
    info->layer = -1;
    for (int i = 0; i < net->n; i++) {
        const dn_layer *l = &net->layers[i];
        if (!l->ops->boxes) continue;
        const int before = info->classes;
        DN_TRY(l->ops->boxes(l, NULL, info, NULL));
        if (info->layer >= 0 && info->classes != before)
            return dn_fail(DN_ERR_CFG, "%s: detection layers %d and %d have different classes= (%d and %d); every "
                           "[yolo] layer needs the same classes=", net->cfg_path, info->layer, i, before,
                           info->classes);
        info->layer = i;
    }
    return DN_OK;
}

/* Decoding reads the head's output on the host: a device backend's output is copied down first. */
static dn_status head_boxes(const dn_network *net, const dn_layer *l, const dn_box_query *q, dn_detector_info *info,
                            dn_detections *out)
{
    if (!net->ctx.device) return l->ops->boxes(l, q, info, out);
    dn_layer host = *l;
    if (!(host.output.data = malloc(sizeof(float) * l->output.n)))
        return dn_fail(DN_ERR_OOM, "out of memory copying layer %d's output", l->index);
    dn_status st = net->ctx.backend->download(host.output.data, &l->output, 0, l->output.n);
    if (st == DN_OK) st = l->ops->boxes(&host, q, info, out);
    free(host.output.data);
    return st;
}

dn_status dn_network_boxes(const dn_network *net, int b, int img_w, int img_h, float thresh, float hier,
                           int letter, int relative, dn_detections *out)
{
    if (!net || !out) return dn_fail(DN_ERR_SHAPE, "dn_network_boxes: NULL argument");
    if (b < 0 || b >= net->info.batch)
        return dn_fail(DN_ERR_SHAPE, "batch item %d is outside the network's batch of %d", b, net->info.batch);
    if (img_w < 1 || img_h < 1)
        return dn_fail(DN_ERR_SHAPE, "image size %d x %d must be positive", img_w, img_h);
    const dn_box_query q = {.b = b, .img_w = img_w, .img_h = img_h, .net_w = net->info.width,
                            .net_h = net->info.height, .letter = letter != 0,
                            .relative = relative != 0, .thresh = thresh, .hier = hier};
    int first = -1;
    dn_detector_info head;
    for (int i = 0; i < net->n && first < 0; i++)
        if (net->layers[i].ops->boxes) {
            DN_TRY(net->layers[i].ops->boxes(&net->layers[i], NULL, &head, NULL));
            first = i;
        }
    if (first < 0) return dn_fail(DN_ERR_UNSUPPORTED, "%s has no detection layer ([yolo] etc.)", net->cfg_path);
    if (out->capacity && out->classes != head.classes) dn_detections_free(out);
    out->classes = head.classes;
    out->n = 0;
    for (int i = first; i < net->n; i++) {
        const dn_layer *l = &net->layers[i];
        if (!l->ops->boxes) continue;
        DN_TRY(l->ops->boxes(l, NULL, &head, NULL));
        if (head.classes != out->classes)
            return dn_fail(DN_ERR_CFG, "%s: detection layers %d and %d have different classes= (%d and %d); "
                           "every [yolo] layer needs the same classes=", net->cfg_path, first, i, out->classes,
                           head.classes);
        DN_TRY(head_boxes(net, l, &q, &head, out));
    }
    return DN_OK;
}
