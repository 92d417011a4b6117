/* The .cfg lexer (spec §1.1): sections of key=value options, kept in file order. */
#include <string.h>

#include "dn.h"

/* Delete every space, tab, CR and LF: upstream strips all whitespace, not only the ends. */
static void strip_all(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++)
        if (*r != ' ' && *r != '\t' && *r != '\r' && *r != '\n') *w++ = *r;
    *w = 0;
}

/* Limits that keep a hostile or mistaken file (/dev/zero, a binary, one endless line)
   from growing memory without bound: upstream cfgs are under 100 KiB, lines under 1 KiB. */
enum { CFG_MAX_LINE = 1 << 16, CFG_MAX_BYTES = 16 << 20 };

/* Read one line into *out (NULL at end of file); *total counts the file's bytes so far. */
static dn_status read_line(FILE *f, const char *path, int line_no, size_t *total, char **out)
{
    *out = NULL;
    size_t cap = 256, len = 0;
    char *buf = malloc(cap);
    if (!buf) return dn_fail(DN_ERR_OOM, "out of memory reading %s", path);
    int ch;
    dn_status st = DN_OK;
    while (st == DN_OK && (ch = fgetc(f)) != EOF && ch != '\n') {
        if (++*total > CFG_MAX_BYTES) {
            st = dn_fail(DN_ERR_CFG, "%s: larger than %d MiB; a cfg file is a small text file (is this one?)", path,
                         CFG_MAX_BYTES >> 20);
        } else if (len + 1 >= CFG_MAX_LINE) {
            st = dn_fail(DN_ERR_CFG, "%s:%d: line longer than %d bytes; a cfg file has one [section] or key=value "
                         "per line (is this a cfg file?)", path, line_no, CFG_MAX_LINE);
        } else if (ch == 0) {
            buf[len] = 0;
            st = dn_fail(DN_ERR_CFG, "%s:%d: NUL byte after '%.40s'; a cfg file is plain text: remove it", path,
                         line_no, buf);
        } else {
            if (len + 1 >= cap) {
                char *grown = realloc(buf, cap *= 2);
                if (!grown) {
                    free(buf);
                    return dn_fail(DN_ERR_OOM, "out of memory reading %s", path);
                }
                buf = grown;
            }
            buf[len++] = (char)ch;
        }
    }
    if (st != DN_OK || (ch == EOF && len == 0)) {
        free(buf);
        return st;
    }
    ++*total;
    buf[len] = 0;
    *out = buf;
    return DN_OK;
}

static dn_status add_section(dn_cfg *cfg, char *type, int line)
{
    dn_section *grown = realloc(cfg->sections, (cfg->n_sections + 1) * sizeof *grown);
    if (!grown) return dn_fail(DN_ERR_OOM, "out of memory reading %s", cfg->path);
    cfg->sections = grown;
    dn_section *s = &cfg->sections[cfg->n_sections++];
    memset(s, 0, sizeof *s);
    s->type = type;
    s->line = line;
    return DN_OK;
}

static dn_status add_option(dn_cfg *cfg, char *text, int line)
{
    if (cfg->n_sections == 0 && !cfg->sections_required) { /* a .data file: options without a section */
        char *type = strdup("");
        if (!type) return dn_fail(DN_ERR_OOM, "out of memory reading %s", cfg->path);
        dn_status st = add_section(cfg, type, 0);
        if (st != DN_OK) free(type);
        DN_TRY(st);
    }
    if (cfg->n_sections == 0)
        return dn_fail(DN_ERR_CFG, "%s:%d: option '%s' before the first section; "
                       "a cfg file starts with [net]", cfg->path, line, text);
    dn_section *s = &cfg->sections[cfg->n_sections - 1];
    char *eq = strchr(text, '=');
    /* a .data file keeps upstream's leniency: a bare key has an empty value (it still
       shadows later lines), an empty value drops the line */
    if (!eq && !cfg->sections_required) eq = text + strlen(text);
    else if (!eq)
        return dn_fail(DN_ERR_CFG, "%s:%d: '%s' is not key=value (missing '=')", cfg->path, line, text);
    else if (eq[1] == 0 && !cfg->sections_required) {
        dn_log(DN_LOG_WARNING, "%s:%d: empty value ignored, as darknet does: '%s'", cfg->path, line, text);
        free(text);
        return DN_OK;
    } else if (eq[1] == 0)
        return dn_fail(DN_ERR_CFG, "%s:%d: '%s' has no value; write key=value", cfg->path, line, text);
    dn_option *grown = realloc(s->opts, (s->n_opts + 1) * sizeof *grown);
    if (!grown) return dn_fail(DN_ERR_OOM, "out of memory reading %s", cfg->path);
    s->opts = grown;
    dn_option *o = &s->opts[s->n_opts++];
    o->key = text;
    o->line = line;
    o->used = 0;
    o->val = *eq ? eq + 1 : eq;
    *eq = 0;
    return DN_OK;
}

static dn_status read_cfg(const char *path, int sections, dn_cfg **out)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return dn_fail(DN_ERR_NOT_FOUND, "cannot open cfg file %s", path);
    dn_cfg *cfg = calloc(1, sizeof *cfg);
    if (!cfg || !(cfg->path = strdup(path))) {
        free(cfg);
        fclose(f);
        return dn_fail(DN_ERR_OOM, "out of memory reading %s", path);
    }
    cfg->sections_required = sections;
    dn_status st = DN_OK;
    int line_no = 0;
    size_t total = 0;
    char *line;
    while (st == DN_OK && (st = read_line(f, path, line_no + 1, &total, &line)) == DN_OK && line) {
        line_no++;
        strip_all(line);
        if (line[0] == 0 || line[0] == '#' || line[0] == ';') {
            free(line);
        } else if (line[0] == '[') {
            st = add_section(cfg, line, line_no);
            if (st != DN_OK) free(line);
        } else {
            st = add_option(cfg, line, line_no);
            if (st != DN_OK) free(line);
        }
    }
    if (st == DN_OK && ferror(f)) st = dn_fail(DN_ERR_IO, "error reading %s", path);
    fclose(f);
    if (st == DN_OK && sections && cfg->n_sections == 0)
        st = dn_fail(DN_ERR_CFG, "%s: the file has no sections; a cfg file starts with [net]", path);
    if (st != DN_OK) {
        dn_cfg_free(cfg);
        return st;
    }
    *out = cfg;
    return DN_OK;
}

void dn_cfg_free(dn_cfg *cfg)
{
    if (!cfg) return;
    for (int i = 0; i < cfg->n_sections; i++) {
        dn_section *s = &cfg->sections[i];
        for (int j = 0; j < s->n_opts; j++) free(s->opts[j].key);
        free(s->opts);
        free(s->type);
    }
    free(cfg->sections);
    free(cfg->path);
    free(cfg);
}

dn_option *dn_cfg_find(dn_section *s, const char *key)
{
    for (int i = 0; i < s->n_opts; i++)
        if (strcmp(s->opts[i].key, key) == 0) {
            s->opts[i].used = 1;
            return &s->opts[i];
        }
    return NULL;
}

dn_status dn_cfg_read(const char *path, dn_cfg **out) { return read_cfg(path, 1, out); }

/* ---- the public reader (darknet.h) -------------------------------------- */

dn_status dn_cfg_load(const char *path, int sections, dn_cfg **out) { return read_cfg(path, sections, out); }

void dn_cfg_release(dn_cfg *cfg) { dn_cfg_free(cfg); }

int dn_cfg_count(const dn_cfg *cfg) { return cfg->n_sections; }

dn_status dn_cfg_section_info(const dn_cfg *cfg, int i, const char **type, int *line, int *n_options)
{
    if (i < 0 || i >= cfg->n_sections)
        return dn_fail(DN_ERR_SHAPE, "section %d out of range: %s has %d", i, cfg->path, cfg->n_sections);
    *type = cfg->sections[i].type;
    *line = cfg->sections[i].line;
    *n_options = cfg->sections[i].n_opts;
    return DN_OK;
}

dn_status dn_cfg_option(const dn_cfg *cfg, int i, int j, const char **key, const char **value, int *line)
{
    if (i < 0 || i >= cfg->n_sections || j < 0 || j >= cfg->sections[i].n_opts)
        return dn_fail(DN_ERR_SHAPE, "option %d of section %d out of range in %s", j, i, cfg->path);
    const dn_option *o = &cfg->sections[i].opts[j];
    *key = o->key;
    *value = o->val;
    *line = o->line;
    return DN_OK;
}
