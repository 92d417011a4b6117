/* Leak check of the engine (issue 12): build, load, predict, train, save and free
   networks many times, and fail to build/load them in every way the parser and the
   weights reader reject, through the public API only. Built and run by
   tools/leak_check.sh with AddressSanitizer, whose LeakSanitizer reports any block
   still allocated at exit; this program also fails if any step misbehaves. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "darknet.h"

static const char *const good_cfg =
    "[net]\nwidth=8\nheight=8\nchannels=3\nbatch=4\nsubdivisions=2\nlearning_rate=0.01\npolicy=sgdr\n"
    "max_batches=10\n"
    "[convolutional]\nfilters=4\nsize=3\npad=1\nbatch_normalize=1\nactivation=mish\n"
    "[maxpool]\nsize=2\nstride=2\n"
    "[convolutional]\nfilters=4\nsize=1\ngroups=2\nactivation=leaky\n"
    "[shortcut]\nfrom=-2\nweights_type=per_channel\n"
    "[route]\nlayers=-1,-3\n"
    "[local_avgpool]\nsize=2\nstride=2\n"
    "[dropout]\nprobability=.2\n"
    "[connected]\noutput=3\nbatch_normalize=1\nactivation=linear\n"
    "[softmax]\n[cost]\n";

/* each fails while parsing a different part, after earlier layers allocated */
static const char *const bad_cfgs[] = {
    "[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=4\n[maxpool]\nsize=3abc\n",
    "[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=4\n[route]\nlayers=-1,,,\n",
    "[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=4\n[yolo]\nanchors=1,2,3\n",
    "[net]\nwidth=2\nheight=2\nchannels=3\n[conv]\nfilters=2\n[maxpool]\nsize=1\npadding=65536\n",
    "[net]\nwidth=8\nheight=8\nchannels=3\nbogus=1\n[convolutional]\nfilters=4\n",
    "[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=4\nfilters=5\n",
    "[net]\nwidth=8\ninputs=3\n[convolutional]\nfilters=4\n",
    "[net]\nwidth=8\nheight=8\nchannels=3\npolicy=step\nstep=0\n[convolutional]\n",
    "[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=4\n[nonsense]\n",
    "width=8\n[net]\n",
};

static int failures;

static void expect(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "leak_check: %s failed: %s\n", what, dn_last_error());
        failures++;
    }
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n) abort();
    fclose(f);
}

int main(int argc, char **argv)
{
    const int cycles = argc > 1 ? atoi(argv[1]) : 50;
    char dir[] = "/tmp/dn-leak-XXXXXX";
    if (!mkdtemp(dir)) return 2;
    char cfg[256], bad[256], weights[256], cut[256];
    snprintf(cfg, sizeof cfg, "%s/good.cfg", dir);
    snprintf(bad, sizeof bad, "%s/bad.cfg", dir);
    snprintf(weights, sizeof weights, "%s/good.weights", dir);
    snprintf(cut, sizeof cut, "%s/cut.weights", dir);
    write_file(cfg, good_cfg, strlen(good_cfg));
    float x[8 * 3 * 8 * 8], y[8 * 3] = {0};
    for (int i = 0; i < 8 * 3 * 8 * 8; i++) x[i] = (float)(i % 17) / 17.f;
    for (int i = 0; i < 8; i++) y[i * 3 + i % 3] = 1;

    for (int cycle = 0; cycle < cycles; cycle++) {
        dn_network *net;
        int loaded;
        float loss;
        expect(dn_network_load_cfg(cfg, 0, &net) == DN_OK, "training build");
        if (net) {
            for (int step = 0; step < 2; step++)
                expect(dn_network_train_step(net, x, y, 3, &loss) == DN_OK, "train_step");
            expect(dn_network_save_weights(net, weights, 0) == DN_OK, "save");
            dn_network_free(net);
        }
        expect(dn_network_load_cfg(cfg, 2, &net) == DN_OK, "inference build");
        if (net) {
            expect(dn_network_load_weights(net, weights, 0, &loaded) == DN_OK, "load");
            expect(dn_network_fuse(net) == DN_OK && dn_network_forward(net, x, 2) == DN_OK, "forward");
            write_file(cut, "\0\0\0\0\2\0\0\0\5\0\0\0\0\0\0\0\0\0\0\0\1\1", 22);
            expect(dn_network_load_weights_checked(net, cut, 0, 1, &loaded) == DN_ERR_WEIGHTS, "strict short load");
            expect(dn_network_load_weights(net, dir, 0, &loaded) != DN_OK, "directory as weights");
            expect(dn_network_save_weights(net, dir, 0) != DN_OK, "directory as save target");
            dn_network_free(net);
        }
        for (size_t i = 0; i < sizeof bad_cfgs / sizeof *bad_cfgs; i++) {
            write_file(bad, bad_cfgs[i], strlen(bad_cfgs[i]));
            expect(dn_network_load_cfg(bad, 1, &net) == DN_ERR_CFG && !net, bad_cfgs[i]);
        }
        expect(dn_network_load_cfg("/dev/zero", 1, &net) == DN_ERR_CFG, "/dev/zero as cfg");
    }
    unlink(cfg);
    unlink(bad);
    unlink(weights);
    unlink(cut);
    rmdir(dir);
    printf("leak_check: %d cycles, %d failures\n", cycles, failures);
    return failures != 0;
}
