/* The .weights format (spec §2): header, then each weighted layer's record in order. */
#include <errno.h>
#include <string.h>

#include "dn.h"

void dn_read_floats(dn_reader *r, float *dst, size_t n)
{
    if (r->eof || n == 0) return;
    if (fread(dst, sizeof(float), n, r->f) < n) r->eof = 1;
}

void dn_write_floats(dn_writer *w, const float *src, size_t n)
{
    if (!w->failed && n && fwrite(src, sizeof(float), n, w->f) < n) w->failed = 1;
}

static int is_at_end(FILE *f)
{
    int c = fgetc(f);
    if (c == EOF) return 1;
    ungetc(c, f);
    return 0;
}

dn_status dn_network_load_weights(dn_network *net, const char *path, int cutoff, int *layers_loaded)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return dn_fail(errno == ENOENT ? DN_ERR_NOT_FOUND : DN_ERR_IO, "cannot open weights file %s: %s", path,
                       strerror(errno));
    int32_t version[3];
    if (fread(version, sizeof(int32_t), 3, f) < 3) {
        fclose(f);
        return dn_fail(DN_ERR_WEIGHTS, "%s: too short for a darknet weights header (12+ bytes)", path);
    }
    uint64_t seen = 0;
    int ok;
    if (version[0] * 10 + version[1] >= 2) {
        ok = fread(&seen, sizeof seen, 1, f) == 1;
    } else {
        uint32_t seen32 = 0;
        ok = fread(&seen32, sizeof seen32, 1, f) == 1;
        seen = seen32;
    }
    if (!ok || version[0] < 0 || version[1] < 0 || version[2] < 0) {
        fclose(f);
        return dn_fail(DN_ERR_WEIGHTS, "%s: not a darknet weights file (header %d.%d.%d)", path, version[0],
                       version[1], version[2]);
    }
    /* a transposed-[connected] file (major or minor > 1000) would need a transpose we do not implement */
    if (version[0] > 1000 || version[1] > 1000) {
        fclose(f);
        return dn_fail(DN_ERR_UNSUPPORTED, "%s: transposed weights (version %d.%d) are not supported", path,
                       version[0], version[1]);
    }
    net->info.seen = seen;
    net->info.cur_iteration = (int)(seen / ((uint64_t)net->info.batch * net->info.subdivisions));
    int end = cutoff > 0 && cutoff < net->n ? cutoff : net->n;
    dn_reader r = {f, 0};
    int i;
    for (i = 0; i < end; i++) {
        dn_layer *l = &net->layers[i];
        if (!l->dontload && l->ops->read_weights) l->ops->read_weights(l, &r);
        if (r.eof) break;
    }
    if (i == end && is_at_end(f) == 0)
        dn_log(DN_LOG_DEBUG, "%s: bytes left after the last layer record are ignored", path);
    if (ferror(f)) {
        fclose(f);
        return dn_fail(DN_ERR_IO, "error reading %s", path);
    }
    fclose(f);
    dn_network_unprepare(net);
    *layers_loaded = i;
    return DN_OK;
}

dn_status dn_network_save_weights(const dn_network *net, const char *path, int cutoff)
{
    size_t len = strlen(path);
    char *tmp = malloc(len + 16);
    if (!tmp) return dn_fail(DN_ERR_OOM, "out of memory saving %s", path);
    snprintf(tmp, len + 16, "%s.part", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        dn_status st = dn_fail(DN_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
        free(tmp);
        return st;
    }
    const dn_net_info *in = &net->info;
    int32_t version[3] = {0, 2, 5};
    uint64_t seen = (uint64_t)in->cur_iteration * in->batch * in->subdivisions;
    dn_writer w = {f, 0};
    if (fwrite(version, sizeof version, 1, f) != 1 || fwrite(&seen, sizeof seen, 1, f) != 1) w.failed = 1;
    int end = cutoff > 0 && cutoff < net->n ? cutoff : net->n;
    for (int i = 0; i < end && !w.failed; i++)
        if (net->layers[i].ops->write_weights) net->layers[i].ops->write_weights(&net->layers[i], &w);
    if (fclose(f) != 0) w.failed = 1;
    if (w.failed || rename(tmp, path) != 0) {
        dn_status st = dn_fail(DN_ERR_IO, "cannot write %s: %s", path, strerror(errno));
        remove(tmp);
        free(tmp);
        return st;
    }
    free(tmp);
    return DN_OK;
}
