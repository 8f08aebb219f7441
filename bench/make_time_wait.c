/* make_time_wait COUNT WORKERS: COUNT client-closed loopback connections, whose client side
 * then sits in TIME_WAIT for 60 s. Connection i binds 127.1.(i / 25000).1, port 20000 + i % 25000
 * (explicit: connect() does no port search). WORKERS processes share the source addresses (worker
 * w takes addresses w, w + WORKERS, ...) and each has its own server, 127.0.0.1 port 80 + w, so
 * that it accepts its own connections and closes the client first. Run only inside a private
 * network namespace (bench/bench_sockets.py does), with tcp_max_tw_buckets raised there.
 * Exit 0 when all are made, 1 on any failure (with the reason on stderr). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define PORTS 25000
#define FIRST_PORT 20000

static int make(int worker, int workers, long count) {
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in server = {.sin_family = AF_INET, .sin_port = htons(80 + worker)};
    server.sin_addr.s_addr = htonl(0x7f000001u);
    if (bind(listener, (const struct sockaddr *)&server, sizeof server) || listen(listener, 128))
        return perror("listen"), 1;
    for (long address = worker; address * PORTS < count; address += workers) {
        for (long i = address * PORTS; i < (address + 1) * PORTS && i < count; i++) {
            int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (client < 0) return perror("socket"), 1;
            struct sockaddr_in source = {.sin_family = AF_INET};
            source.sin_port = htons(FIRST_PORT + i % PORTS);
            source.sin_addr.s_addr = htonl(0x7f010001u | (unsigned)address << 8);
            if (bind(client, (const struct sockaddr *)&source, sizeof source))
                return perror("bind"), 1;
            if (connect(client, (const struct sockaddr *)&server, sizeof server))
                return perror("connect"), 1;
            int accepted = accept(listener, NULL, NULL);
            if (accepted < 0) return perror("accept"), 1;
            close(client); /* the client closes first: TIME_WAIT on its side */
            close(accepted);
        }
    }
    close(listener);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3) return fprintf(stderr, "usage: make_time_wait COUNT WORKERS\n"), 1;
    long count = atol(argv[1]);
    int workers = atoi(argv[2]);
    if (count < 1 || count > 255L * PORTS || workers < 1 || workers > 64)
        return fprintf(stderr, "make_time_wait: COUNT 1..%ld, WORKERS 1..64\n", 255L * PORTS), 1;
    for (int w = 0; w < workers; w++) {
        pid_t pid = fork();
        if (pid < 0) return perror("fork"), 1;
        if (pid == 0) _exit(make(w, workers, count));
    }
    int status, failed = 0;
    for (int w = 0; w < workers; w++) {
        if (wait(&status) < 0) return perror("wait"), 1;
        failed |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    }
    return failed;
}
