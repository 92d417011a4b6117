/* Ctrl-C during a long engine call: while the main thread is inside libdarknet,
   SIGINT sets a flag that the engine polls between layers (dn_network_set_cancel)
   instead of waiting for the call to return; the binding then raises
   KeyboardInterrupt. Python's own handler is restored after the call. */
#ifndef DARKNETPY_INTERRUPT_H
#define DARKNETPY_INTERRUPT_H

#include <signal.h>
#include <string.h>

static volatile int dnpy_interrupted;
static struct sigaction dnpy_previous;

static void dnpy_on_sigint(int sig)
{
    (void)sig;
    dnpy_interrupted = 1;
}

static volatile int *dnpy_interrupt_flag(void) { return &dnpy_interrupted; }

/* Install the handler (main thread only); returns 1 when installed. */
static int dnpy_catch_sigint(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = dnpy_on_sigint;
    sigemptyset(&sa.sa_mask);
    dnpy_interrupted = 0;
    return sigaction(SIGINT, &sa, &dnpy_previous) == 0;
}

/* Restore the previous handler; returns 1 when SIGINT arrived meanwhile. */
static int dnpy_release_sigint(void)
{
    sigaction(SIGINT, &dnpy_previous, NULL);
    const int fired = dnpy_interrupted;
    dnpy_interrupted = 0;
    return fired;
}

#endif /* DARKNETPY_INTERRUPT_H */
