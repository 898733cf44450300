/*
 * The TCP front benchmark's load generator (tests/benchmarks/tcp_front.py): CLIENTS concurrent clients,
 * each opening a connection, sending one frame, reading the one reply frame (4-byte big-endian length,
 * then the body), closing, and starting over until SECONDS have passed; the way the reference's client
 * uses a stream manager. Written in C so that the generator is not what the benchmark measures: the
 * asyncio generator it replaces spent 160-176 us of CPU per request, more than either server.
 *
 * Usage: tcp_once PORT CLIENTS SECONDS REQUEST_HEX
 * Prints one JSON object: answered, elapsed (s, until the last client is done), p50, p99, mean and max
 * (s, from the connect call to the reply's last byte), over_100ms (replies that took longer), under_100ms_s (the
 * latencies of the other replies, summed: over elapsed, the clients being answered at a time, those waiting on
 * a retransmitted SYN left out), errors, first_errors (up to 3), cpu (s, user + system).
 * A reply is an error unless its body contains "status": "success". Clients still waiting 30 s after
 * the window are counted as errors and not waited for.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_REPLY (1 << 20)
#define FIRST_ERRORS 3
#define GRACE 30.0
#define SUCCESS "\"status\": \"success\""

typedef struct {
    int fd;
    int sent;
    double started;
    size_t have;
    unsigned char *buffer;
} client_t;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int port, epoll_fd, live;
static double deadline;
static unsigned char *request;
static size_t request_size;
static double *latencies;
static size_t answered, latency_capacity;
static long errors;
static char first_errors[FIRST_ERRORS][160];

static void error(const char *what, int code) {
    if (errors < FIRST_ERRORS)
        snprintf(first_errors[errors], sizeof first_errors[0], "%s%s%s", what, code ? ": " : "",
                 code ? strerror(code) : "");
    errors++;
}

static void start(client_t *client);

static void finish(client_t *client) {
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, client->fd, NULL);
    close(client->fd);
    client->fd = -1;
    if (now() < deadline)
        start(client);
    else
        live--;
}

static void start(client_t *client) {
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    client->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (client->fd < 0) {
        error("socket", errno);
        live--;
        return;
    }
    setsockopt(client->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    client->sent = 0;
    client->have = 0;
    client->started = now();
    if (connect(client->fd, (struct sockaddr *)&address, sizeof address) < 0 && errno != EINPROGRESS) {
        error("connect", errno);
        close(client->fd);
        client->fd = -1;
        struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
        if (now() < deadline)
            start(client);
        else
            live--;
        return;
    }
    struct epoll_event event = {.events = EPOLLOUT, .data.ptr = client};
    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, client->fd, &event);
}

static void writable(client_t *client) {
    int code = 0;
    socklen_t size = sizeof code;
    getsockopt(client->fd, SOL_SOCKET, SO_ERROR, &code, &size);
    if (code) {  /* refused, reset: paused as a refused connect() is (a server that is down) */
        error("connect", code);
        struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
        finish(client);
        return;
    }
    ssize_t written = write(client->fd, request, request_size);
    if (written != (ssize_t)request_size) {
        error("write", written < 0 ? errno : 0);
        finish(client);
        return;
    }
    client->sent = 1;
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = client};
    epoll_ctl(epoll_fd, EPOLL_CTL_MOD, client->fd, &event);
}

static void readable(client_t *client) {
    for (;;) {
        ssize_t got = read(client->fd, client->buffer + client->have, MAX_REPLY - client->have);
        if (got < 0) {
            if (errno == EAGAIN)
                return;
            error("read", errno);
            finish(client);
            return;
        }
        if (got == 0) {
            error("closed before the reply", 0);
            finish(client);
            return;
        }
        client->have += (size_t)got;
        if (client->have < 4)
            continue;
        size_t size = ((size_t)client->buffer[0] << 24) | ((size_t)client->buffer[1] << 16) |
                      ((size_t)client->buffer[2] << 8) | client->buffer[3];
        if (size + 4 > MAX_REPLY) {
            error("reply too large", 0);
            finish(client);
            return;
        }
        if (client->have < size + 4)
            continue;
        double latency = now() - client->started;
        if (memmem(client->buffer + 4, size, SUCCESS, strlen(SUCCESS)) == NULL) {
            char text[120];
            size_t shown = size < sizeof text - 1 ? size : sizeof text - 1;
            memcpy(text, client->buffer + 4, shown);
            text[shown] = 0;
            for (size_t i = 0; i < shown; i++)
                if (text[i] == '"' || text[i] == '\\' || (unsigned char)text[i] < 32)
                    text[i] = '\'';
            error(text, 0);
        } else {
            if (answered == latency_capacity) {
                latency_capacity = latency_capacity ? latency_capacity * 2 : 65536;
                latencies = realloc(latencies, latency_capacity * sizeof *latencies);
            }
            latencies[answered++] = latency;
        }
        finish(client);
        return;
    }
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(double fraction) {
    if (!answered)
        return 0.0;
    size_t index = (size_t)(fraction * (double)(answered - 1) + 0.5);
    return latencies[index < answered ? index : answered - 1];
}

static double mean(void) {
    double sum = 0.0;
    for (size_t i = 0; i < answered; i++)
        sum += latencies[i];
    return answered ? sum / (double)answered : 0.0;
}

static size_t over(double limit) {
    size_t count = 0;
    for (size_t i = 0; i < answered; i++)
        count += latencies[i] > limit;
    return count;
}

static double summed_up_to(double limit) {
    double sum = 0.0;
    for (size_t i = 0; i < answered; i++)
        if (latencies[i] <= limit)
            sum += latencies[i];
    return sum;
}

static double cpu_seconds(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (double)usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 + (double)usage.ru_stime.tv_sec +
           usage.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s PORT CLIENTS SECONDS REQUEST_HEX\n", argv[0]);
        return 2;
    }
    port = atoi(argv[1]);
    int clients = atoi(argv[2]);
    double seconds = atof(argv[3]);
    size_t hex = strlen(argv[4]);
    request_size = hex / 2;
    request = malloc(request_size);
    for (size_t i = 0; i < request_size; i++)
        sscanf(argv[4] + 2 * i, "%2hhx", &request[i]);
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);

    epoll_fd = epoll_create1(0);
    client_t *all = calloc((size_t)clients, sizeof *all);
    double cpu_before = cpu_seconds(), begin = now();
    deadline = begin + seconds;
    live = clients;
    for (int i = 0; i < clients; i++) {
        all[i].buffer = malloc(MAX_REPLY);
        start(&all[i]);
    }
    struct epoll_event events[256];
    while (live > 0) {
        double left = deadline + GRACE - now();
        if (left <= 0) {
            for (int i = 0; i < clients; i++)
                if (all[i].fd >= 0)
                    error("no reply 30 s after the window", 0);
            break;
        }
        int ready = epoll_wait(epoll_fd, events, 256, (int)(left * 1000) + 1);
        for (int i = 0; i < ready; i++) {
            client_t *client = events[i].data.ptr;
            if (client->fd < 0)
                continue;
            if (!client->sent)
                writable(client);
            else
                readable(client);
        }
    }
    double elapsed = now() - begin;
    if (elapsed > seconds + GRACE)
        elapsed = seconds + GRACE;
    double cpu = cpu_seconds() - cpu_before;
    qsort(latencies, answered, sizeof *latencies, by_value);
    printf("{\"answered\": %zu, \"elapsed\": %.6f, \"p50\": %.9f, \"p99\": %.9f, \"mean\": %.9f, "
           "\"max\": %.9f, \"over_100ms\": %zu, \"under_100ms_s\": %.9f, \"errors\": %ld, \"first_errors\": [",
           answered, elapsed, percentile(0.5), percentile(0.99), mean(), percentile(1.0), over(0.1),
           summed_up_to(0.1), errors);
    for (long i = 0; i < errors && i < FIRST_ERRORS; i++)
        printf("%s\"%s\"", i ? ", " : "", first_errors[i]);
    printf("], \"cpu\": %.6f}\n", cpu);
    return 0;
}
