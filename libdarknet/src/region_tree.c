/* Softmax trees of [region] layers (yolo9000): the .tree file, one node per line as
   "name parent_index" (-1: a root), parents before their children. Consecutive nodes with
   the same parent form a group, a softmax over siblings. */
#include <errno.h>
#include <string.h>

#include "layer_region.h"

#define TREE_MAX_BYTES (64 << 20)

/* The file as written, else next to the cfg, else its file name next to the cfg (upstream
   cfgs say data/9k.tree relative to darknet's folder). */
static FILE *open_tree(const char *name, const char *cfg_path, char *path, size_t n, char *tried, size_t tn)
{
    const char *slash = strrchr(cfg_path, '/'), *base = strrchr(name, '/');
    const int dir = slash ? (int)(slash - cfg_path + 1) : 0;
    size_t pos = 0;
    for (int i = 0; i < 3; i++) {
        if (i == 0) snprintf(path, n, "%s", name);
        else if (name[0] == '/' || (i == 2 && !base)) break;
        else snprintf(path, n, "%.*s%s", dir, cfg_path, i == 1 ? name : base + 1);
        dn_appendf(tried, tn, &pos, "%s%s", i ? ", " : "", path);
        FILE *f = fopen(path, "rb");
        if (f) return f;
    }
    return NULL;
}

static dn_status read_all(FILE *f, const char *path, char **text, size_t *len)
{
    char *buf = malloc(TREE_MAX_BYTES + 1);
    if (!buf) return dn_fail(DN_ERR_OOM, "out of memory reading %s", path);
    *len = fread(buf, 1, TREE_MAX_BYTES + 1, f);
    if (*len > TREE_MAX_BYTES) {
        free(buf);
        return dn_fail(DN_ERR_CFG, "%s is larger than %d bytes; it is not a .tree file", path, TREE_MAX_BYTES);
    }
    buf[*len] = 0;
    *text = buf;
    return DN_OK;
}

/* Parse the lines of `text` into t (parent array sized by the line count). */
static dn_status parse_lines(char *text, size_t len, const char *path, region_tree *t)
{
    int lines = 0;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    if (!(t->parent = malloc(sizeof(int) * (lines + 1)))) return dn_fail(DN_ERR_OOM, "out of memory");
    char *line = text;
    for (int no = 1; line < text + len; no++) {
        char *end = strchr(line, '\n');
        if (!end) end = text + len;
        *end = 0;
        if (end > line && end[-1] == '\r') end[-1] = 0;
        char name[256], extra;
        int parent;
        const int got = sscanf(line, "%255s %d %c", name, &parent, &extra);
        if (got != 2 || parent < -1 || parent >= t->n)
            return dn_fail(DN_ERR_CFG, "%s:%d: '%.60s' is not 'name parent_index' with a parent index from -1 (a "
                           "root) to %d: each node's parent is on an earlier line", path, no, line, t->n - 1);
        t->parent[t->n++] = parent;
        line = end + 1;
    }
    return DN_OK;
}

static dn_status make_groups(region_tree *t)
{
    if (!(t->group_start = malloc(sizeof(int) * (t->n + 1)))) return dn_fail(DN_ERR_OOM, "out of memory");
    t->groups = 0;
    for (int i = 0; i < t->n; i++)
        if (i == 0 || t->parent[i] != t->parent[i - 1]) t->group_start[t->groups++] = i;
    t->group_start[t->groups] = t->n;
    return DN_OK;
}

dn_status region_tree_read(region_tree *t, const char *name, const char *cfg_path, int classes)
{
    char tried[3 * 4096 + 8], path[4096];
    FILE *f = open_tree(name, cfg_path, path, sizeof path, tried, sizeof tried);
    if (!f) return dn_fail(DN_ERR_IO, "cannot open the softmax tree tree=%s (tried %s): %s", name, tried,
                           strerror(errno));
    char *text = NULL;
    size_t len = 0;
    dn_status st = read_all(f, path, &text, &len);
    fclose(f);
    if (st == DN_OK && memchr(text, 0, len))
        st = dn_fail(DN_ERR_CFG, "%s holds NUL bytes at offset %zu: the file is damaged; use an intact copy of the "
                     ".tree file", path, (size_t)((char *)memchr(text, 0, len) - text));
    if (st == DN_OK) st = parse_lines(text, len, path, t);
    free(text);
    if (st == DN_OK && t->n != classes)
        st = dn_fail(DN_ERR_CFG, "%s has %d nodes but the [region] layer has classes=%d; a softmax tree has one node "
                     "per class", path, t->n, classes);
    return st == DN_OK ? make_groups(t) : st;
}

void region_tree_free(region_tree *t)
{
    free(t->parent);
    free(t->group_start);
    memset(t, 0, sizeof *t);
}
