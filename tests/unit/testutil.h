/* Helpers shared by the unit tests. */
#ifndef SK_TESTS_TESTUTIL_H
#define SK_TESTS_TESTUTIL_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A loopback TCP port that is free now, chosen below the kernel's ephemeral range
 * (32768 and up), so an outgoing connection made meanwhile cannot take it before the
 * test binds it. -1 when none was found. */
static inline int sk_test_free_port(void)
{
        static unsigned seed;
        if (!seed)
                seed = (unsigned)time(NULL) ^ (unsigned)getpid() << 8;
        for (int attempt = 0; attempt < 200; attempt++) {
                int port = 20000 + (int)(rand_r(&seed) % 12000);
                int fd = socket(AF_INET, SOCK_STREAM, 0);
                if (fd < 0)
                        return -1;
                struct sockaddr_in a = {.sin_family = AF_INET,
                                        .sin_port = htons((uint16_t)port),
                                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
                int ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
                close(fd);
                if (ok)
                        return port;
        }
        return -1;
}

#endif
