/* A minimal HTTP/1.1 responder for calibrating HTTP clients: one epoll thread answers every
 * request head (whatever its method and path; no body expected) with the same 200, as cheaply
 * as a server can (no parsing past the head's end). Against it a one-core client, not the
 * server, is the limit: `TARGET=fast bash benches/http_vs_wrk.sh`.
 *
 * Build: cc -O2 -o fast_responder benches/fast_responder.c
 * Run:   fast_responder   (prints "serving on http://127.0.0.1:PORT", port chosen by the OS)
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static const char OK[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         "Content-Length: 15\r\n\r\n{\"status\":\"ok\"}";
#define FDS 65536
/* Per connection: how much of "\r\n\r\n" the bytes so far end with (0-3). */
static unsigned char state[FDS];

int main(void) {
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(l, (void *)&a, sizeof a) || listen(l, 4096) || getsockname(l, (void *)&a, &al)) {
        perror("listen");
        return 1;
    }
    printf("serving on http://127.0.0.1:%d\n", ntohs(a.sin_port));
    fflush(stdout);
    int ep = epoll_create1(0);
    struct epoll_event e = {.events = EPOLLIN, .data.fd = l};
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &e);
    static struct epoll_event ev[512];
    static char in[65536], out[1 << 20];
    for (;;) {
        int n = epoll_wait(ep, ev, 512, -1);
        for (int i = 0; i < n; i++) {
            int fd = ev[i].data.fd;
            if (fd == l) {
                int c = accept(l, 0, 0);
                if (c < 0 || c >= FDS) {
                    if (c >= 0) close(c);
                    continue;
                }
                setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                fcntl(c, F_SETFL, O_NONBLOCK);
                state[c] = 0;
                struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
                epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                continue;
            }
            ssize_t r = read(fd, in, sizeof in);
            if (r <= 0) {
                close(fd);
                continue;
            }
            size_t o = 0;
            unsigned char s = state[fd];
            for (ssize_t j = 0; j < r; j++) {
                char want = (s % 2 == 0) ? '\r' : '\n';
                s = in[j] == want ? s + 1 : (in[j] == '\r' ? 1 : 0);
                if (s == 4) {
                    s = 0;
                    if (o + sizeof OK <= sizeof out) {
                        memcpy(out + o, OK, sizeof OK - 1);
                        o += sizeof OK - 1;
                    }
                }
            }
            state[fd] = s;
            for (size_t w = 0; w < o;) {
                ssize_t k = write(fd, out + w, o - w);
                if (k <= 0) break; /* a client that does not read: its answers are dropped */
                w += (size_t)k;
            }
        }
    }
}
