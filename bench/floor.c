/* The floor for `tcptune sockets`: the same NETLINK_SOCK_DIAG dump (SOCK_DIAG_BY_FAMILY,
 * inet_diag_req_v2 for TCP, every state, no extensions, IPv4 then IPv6, the same receive buffer)
 * that only counts sockets per state, and prints the counts as one JSON object:
 * {"ESTABLISHED": n, ..., "CLOSING": n, "total": n}. NEW_SYN_RECV counts as SYN_RECV, as in
 * tcptune. Built and run by bench/bench_sockets.py; exit 1 on any error. */
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RECV_BYTES (64 * 1024) /* as tcptune/sockdiag.py */
#define ALL_STATES 0xffe       /* bits 1..11, as tcptune.census.ALL_STATES */

static const char *names[] = {"", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1",
                              "FIN_WAIT2", "TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK",
                              "LISTEN", "CLOSING"};
static unsigned long counts[16];
static unsigned char buffer[RECV_BYTES] __attribute__((aligned(8)));

static int dump(int family) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0) return perror("socket"), -1;
    struct {
        struct nlmsghdr header;
        struct inet_diag_req_v2 request;
    } message;
    memset(&message, 0, sizeof message);
    message.header.nlmsg_len = sizeof message;
    message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    message.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    message.header.nlmsg_seq = 1;
    message.request.sdiag_family = family;
    message.request.sdiag_protocol = IPPROTO_TCP;
    message.request.idiag_states = ALL_STATES;
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    if (sendto(fd, &message, sizeof message, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0)
        return perror("sendto"), close(fd), -1;
    for (;;) {
        ssize_t got = recv(fd, buffer, sizeof buffer, 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            return perror("recv"), close(fd), -1;
        }
        if (got == 0) return fprintf(stderr, "recv: end of stream\n"), close(fd), -1;
        int left = (int)got;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buffer; NLMSG_OK(h, left);
             h = NLMSG_NEXT(h, left)) {
            if (h->nlmsg_type == NLMSG_DONE) return close(fd), 0;
            if (h->nlmsg_type == NLMSG_ERROR)
                return fprintf(stderr, "netlink error\n"), close(fd), -1;
            if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY) continue;
            struct inet_diag_msg *m = NLMSG_DATA(h);
            counts[m->idiag_state & 15]++;
        }
    }
}

int main(void) {
    if (dump(AF_INET) || dump(AF_INET6)) return 1;
    counts[3] += counts[12]; /* TCP_NEW_SYN_RECV: request sockets are SYN_RECV */
    unsigned long total = 0;
    printf("{");
    for (int state = 1; state <= 11; state++) {
        printf("\"%s\": %lu, ", names[state], counts[state]);
        total += counts[state];
    }
    printf("\"total\": %lu}\n", total);
    return 0;
}
