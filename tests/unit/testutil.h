/* Helpers shared by the unit tests. */
#ifndef SK_TESTS_TESTUTIL_H
#define SK_TESTS_TESTUTIL_H

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
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

/* Runs a test service script (tests/lib/NAME.sh VERB DIR, from the repository root); the
 * first line it prints lands in out when out. 0 when it exited 0, -1 otherwise. */
static inline int sk_test_service(const char *script, const char *verb, const char *dir, char *out,
                                  size_t len)
{
        char cmd[512];
        snprintf(cmd, sizeof(cmd), "%s %s '%s'", script, verb, dir);
        FILE *p = popen(cmd, "r");
        if (!p)
                return -1;
        char line[512] = "", rest[256];
        if (!fgets(line, sizeof(line), p))
                line[0] = '\0';
        while (fgets(rest, sizeof(rest), p))
                ;
        int st = pclose(p);
        if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
                return -1;
        line[strcspn(line, "\n")] = '\0';
        if (out)
                snprintf(out, len, "%s", line);
        return 0;
}

/* Gives every service of a JSON list whose containers are [] one container, as the domain
 * model wants at least one (fixtures that only care about placement leave them empty). */
static inline void sk_test_fill_containers(json_t *services)
{
        size_t i;
        json_t *svc;
        json_array_foreach(services, i, svc)
        {
                json_t *c = json_object_get(svc, "containers");
                if (json_is_array(c) && json_array_size(c) == 0)
                        json_array_append_new(
                            c, json_pack("{s:s, s:s}", "name", "main", "image", "localhost/app:1"));
        }
}

#endif
