/* The .weights format (spec §2): header, then each weighted layer's record in order. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

/* Highest header version field we accept: darknet writes 0.2.5 (transposed files
   add 1000); larger values mean the file is something else (text reads as ~5e8). */
enum { MAX_VERSION_FIELD = 1 << 16 };

/* Bytes after the current position: exact for a regular file, else 0 or 1 (more exist). */
static long long bytes_left(FILE *f)
{
    struct stat st;
    long pos = ftell(f);
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && pos >= 0) return (long long)st.st_size - pos;
    int c = fgetc(f);
    if (c == EOF) return 0;
    ungetc(c, f);
    return 1;
}

static dn_status read_header(FILE *f, const char *path, uint64_t *seen)
{
    int32_t version[3];
    if (fread(version, sizeof(int32_t), 3, f) < 3)
        return dn_fail(DN_ERR_WEIGHTS, "%s: too short for a darknet weights header (12+ bytes)", path);
    for (int i = 0; i < 3; i++)
        if (version[i] < 0 || version[i] > MAX_VERSION_FIELD)
            return dn_fail(DN_ERR_WEIGHTS, "%s: not a darknet weights file (its header reads version %d.%d.%d; "
                           "darknet writes 0.2.5)", path, version[0], version[1], version[2]);
    int ok;
    if (version[0] * 10 + version[1] >= 2) {
        ok = fread(seen, sizeof *seen, 1, f) == 1;
    } else {
        uint32_t seen32 = 0;
        ok = fread(&seen32, sizeof seen32, 1, f) == 1;
        *seen = seen32;
    }
    if (!ok) return dn_fail(DN_ERR_WEIGHTS, "%s: too short for a darknet weights header", path);
    /* a transposed-[connected] file (major or minor > 1000) would need a transpose we do not implement */
    if (version[0] > 1000 || version[1] > 1000)
        return dn_fail(DN_ERR_UNSUPPORTED, "%s: transposed weights (version %d.%d) are not supported", path,
                       version[0], version[1]);
    return DN_OK;
}

/* Bytes the records of layers [0, end) hold in the file. */
static uint64_t expected_bytes(const dn_network *net, int end)
{
    uint64_t n = 0;
    for (int i = 0; i < end; i++) {
        const dn_layer *l = &net->layers[i];
        if (!l->dontload && l->ops->read_weights && l->ops->n_weights) n += l->ops->n_weights(l);
    }
    return n * sizeof(float);
}

dn_status dn_network_load_weights_checked(dn_network *net, const char *path, int cutoff, int strict,
                                          int *layers_loaded)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return dn_fail(errno == ENOENT ? DN_ERR_NOT_FOUND : DN_ERR_IO, "cannot open weights file %s: %s", path,
                       strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || S_ISDIR(sb.st_mode)) {
        fclose(f);
        return dn_fail(DN_ERR_IO, "%s is a directory; give the path of a .weights file", path);
    }
    uint64_t seen = 0;
    dn_status st = read_header(f, path, &seen);
    if (st != DN_OK) {
        fclose(f);
        return st;
    }
    const long header = ftell(f);
    st = dn_network_sync_host(net); /* layers the file does not reach keep their trained values */
    if (st != DN_OK) {
        fclose(f);
        return st;
    }
    net->info.seen = seen;
    net->info.cur_iteration = (int)(seen / ((uint64_t)net->info.batch * net->info.subdivisions));
    const int end = cutoff > 0 && cutoff < net->n ? cutoff : net->n;
    dn_reader r = {f, 0};
    int i;
    for (i = 0; i < end; i++) {
        dn_layer *l = &net->layers[i];
        if (!l->dontload && l->ops->read_weights) l->ops->read_weights(l, &r);
        if (r.eof) break;
    }
    const long long left = i == end ? bytes_left(f) : 0;
    if (ferror(f)) {
        fclose(f);
        return dn_fail(DN_ERR_IO, "error reading %s", path);
    }
    fclose(f);
    dn_network_unprepare(net);
    *layers_loaded = i;
    const unsigned long long want = expected_bytes(net, end);
    if (i > 0 && i < end && !strict && S_ISREG(sb.st_mode) && (uint64_t)(sb.st_size - header) == expected_bytes(net, i)) {
        /* it ends where layer i begins: a partial cut (e.g. yolov4.conv.137), as intended */
        dn_log(DN_LOG_INFO, "%s: loaded the first %d layers (a partial cut); the rest keeps its initial values",
               path, i);
        return DN_OK;
    }
    const char *fix = strict ? "check that it was made for this cfg (strict=False loads what fits)"
                             : "check that it was made for this cfg; the rest keeps its initial values";
    if (i < end)
        st = dn_fail(DN_ERR_WEIGHTS, "%s is too short: it ends inside layer %d (%s); %d of %d layers loaded, "
                     "%lld of %llu weight bytes present; %s", path, i, net->layers[i].ops->name, i, end,
                     (long long)sb.st_size - header, want, fix);
    else if (left > 0 && end == net->n)
        st = dn_fail(DN_ERR_WEIGHTS, "%s has %s%lld bytes left after the last of %d layers (%llu weight bytes): it "
                     "was made for another cfg or header version; %s", path, S_ISREG(sb.st_mode) ? "" : "at least ",
                     left, end, want, fix);
    else
        return DN_OK;
    if (strict) return st;
    dn_log(DN_LOG_WARNING, "%s", dn_last_error());
    return DN_OK;
}

dn_status dn_network_load_weights(dn_network *net, const char *path, int cutoff, int *layers_loaded)
{
    return dn_network_load_weights_checked(net, path, cutoff, 0, layers_loaded);
}

/* The file a save replaces: a symbolic link is written through (its target is
   replaced, the link kept); anything but a regular file or a new name is refused. */
static dn_status save_target(const char *path, char **out)
{
    struct stat sb;
    *out = NULL;
    if (lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode) && !(*out = realpath(path, NULL)))
        return dn_fail(DN_ERR_IO, "cannot write %s: it is a symbolic link whose target cannot be resolved (%s); "
                       "fix or remove the link", path, strerror(errno));
    const char *dest = *out ? *out : path;
    if (stat(dest, &sb) == 0 && !S_ISREG(sb.st_mode)) {
        free(*out);
        *out = NULL;
        return dn_fail(DN_ERR_IO, "cannot write %s: it is %s, not a regular file; give the path of a .weights file",
                       path, S_ISDIR(sb.st_mode) ? "a directory" : "a device or special file");
    }
    if (!*out && !(*out = strdup(path))) return dn_fail(DN_ERR_OOM, "out of memory saving %s", path);
    return DN_OK;
}

dn_status dn_network_save_weights(const dn_network *net, const char *path, int cutoff)
{
    char *dest;
    DN_TRY(dn_network_sync_host(net)); /* a device's trained values */
    DN_TRY(save_target(path, &dest));
    size_t len = strlen(dest);
    char *tmp = malloc(len + 16);
    if (!tmp) {
        free(dest);
        return dn_fail(DN_ERR_OOM, "out of memory saving %s", path);
    }
    snprintf(tmp, len + 16, "%s.part", dest);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        dn_status st = dn_fail(DN_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
        free(tmp);
        free(dest);
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
    dn_status st = DN_OK;
    if (w.failed || rename(tmp, dest) != 0) {
        st = dn_fail(DN_ERR_IO, "cannot write %s: %s", path, strerror(errno));
        remove(tmp);
    }
    free(tmp);
    free(dest);
    return st;
}
