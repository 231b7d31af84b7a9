/*
 * delayline.c - userspace one-way delay line for the staleconn lab.
 *
 * Binds to an NFQUEUE queue, holds every queued packet for DELAY_MS
 * milliseconds (measured from the moment it reached userspace) and then
 * issues NF_ACCEPT verdicts strictly in arrival order.  This stands in for
 * `tc qdisc netem delay`, which this kernel does not have.
 *
 * usage: delayline QUEUE_NUM DELAY_MS [MAX_SECONDS]
 *   MAX_SECONDS (default 1800) bounds the run time; the lab kills it by PID.
 * build: gcc -O2 -Wall -o delayline delayline.c -lnetfilter_queue -lnfnetlink
 */
#include <errno.h>
#include <signal.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

#define RING 65536

static struct { uint32_t id; int64_t due_ns; } ring[RING];
static unsigned head, tail;           /* tail: next free, head: oldest */
static int64_t delay_ns;
static unsigned long n_in, n_out, n_overflow;
static volatile sig_atomic_t stop;
static void on_sig(int s) { (void)s; stop = 1; }

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cb(struct nfq_q_handle *qh, struct nfgenmsg *nfmsg,
              struct nfq_data *nfa, void *data) {
    (void)nfmsg; (void)data;
    struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
    if (!ph) return 0;
    uint32_t id = ntohl(ph->packet_id);
    n_in++;
    if (tail - head >= RING) {        /* ring full: let it through now */
        n_overflow++;
        nfq_set_verdict(qh, id, NF_ACCEPT, 0, NULL);
        n_out++;
        return 0;
    }
    ring[tail % RING].id = id;
    ring[tail % RING].due_ns = now_ns() + delay_ns;
    tail++;
    return 0;
}

static void release_due(struct nfq_q_handle *qh) {
    int64_t t = now_ns();
    while (head != tail && ring[head % RING].due_ns <= t) {
        nfq_set_verdict(qh, ring[head % RING].id, NF_ACCEPT, 0, NULL);
        head++;
        n_out++;
    }
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s QUEUE_NUM DELAY_MS [MAX_SECONDS]\n", argv[0]);
        return 2;
    }
    int qnum = atoi(argv[1]);
    delay_ns = (int64_t)(atof(argv[2]) * 1e6);
    int64_t max_s = argc > 3 ? atoll(argv[3]) : 1800;
    int64_t deadline = now_ns() + max_s * 1000000000LL;

    struct nfq_handle *h = nfq_open();
    if (!h) { perror("nfq_open"); return 1; }
    nfq_unbind_pf(h, AF_INET);  nfq_bind_pf(h, AF_INET);   /* no-ops on new kernels */
    nfq_unbind_pf(h, AF_INET6); nfq_bind_pf(h, AF_INET6);
    struct nfq_q_handle *qh = nfq_create_queue(h, qnum, &cb, NULL);
    if (!qh) { perror("nfq_create_queue"); return 1; }
    /* only the packet id is needed: copy metadata, no payload */
    if (nfq_set_mode(qh, NFQNL_COPY_META, 0) < 0) { perror("nfq_set_mode"); return 1; }
    nfq_set_queue_maxlen(qh, 8192);
    int fd = nfq_fd(h);
    int rcvbuf = 8 << 20;
    nfnl_rcvbufsiz(nfq_nfnlh(h), rcvbuf);

    char buf[65536] __attribute__((aligned));
    fprintf(stderr, "delayline: queue %d, delay %.1f ms, up to %lld s\n",
            qnum, delay_ns / 1e6, (long long)max_s);
    signal(SIGTERM, on_sig); signal(SIGINT, on_sig);
    while (!stop && now_ns() < deadline) {
        int timeout_ms = 1000;
        if (head != tail) {
            int64_t d = ring[head % RING].due_ns - now_ns();
            timeout_ms = d <= 0 ? 0 : (int)((d + 999999) / 1000000);
        }
        /* sub-millisecond precision: when close, spin with 0-timeout polls */
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r = poll(&p, 1, timeout_ms > 1 ? timeout_ms - 1 : 0);
        if (r < 0 && errno != EINTR) { perror("poll"); break; }
        if (r > 0 && (p.revents & POLLIN)) {
            for (int k = 0; k < 64; k++) {       /* drain what is ready */
                int n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
                if (n < 0) {
                    if (errno == ENOBUFS) { fprintf(stderr, "delayline: ENOBUFS (dropped)\n"); continue; }
                    break;
                }
                nfq_handle_packet(h, buf, n);
            }
        }
        release_due(qh);
        if (head != tail && timeout_ms <= 1) {
            /* near-due: short sleep instead of busy spinning */
            struct timespec ts = { 0, 200000 };
            nanosleep(&ts, NULL);
            release_due(qh);
        }
    }
    fprintf(stderr, "delayline: in=%lu out=%lu overflow=%lu\n", n_in, n_out, n_overflow);
    nfq_destroy_queue(qh);
    nfq_close(h);
    return 0;
}
