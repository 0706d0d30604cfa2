/* Child processes of `skerry dev`, and the small file helpers it needs. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "dev/dev-internal.h"

volatile int sk_dev_interrupted;

static void closedirp(DIR **d)
{
        if (*d)
                closedir(*d);
}

int sk_dev_mkdirs(const char *path, sk_error **err)
{
        _cleanup_free_ char *p = strdup(path);
        if (!p)
                return sk_error_set(err, ENOMEM, "out of memory");
        for (char *s = p + 1;; s++) {
                if (*s != '/' && *s != '\0')
                        continue;
                char c = *s;
                *s = '\0';
                if (mkdir(p, 0700) < 0 && errno != EEXIST)
                        return sk_error_set(err, errno, "cannot create %s: %s", p, strerror(errno));
                if (!(*s = c))
                        break;
        }
        return 0;
}

int sk_dev_lock(const char *dir, sk_error **err)
{
        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, "%s/dev.lock", dir) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
                return sk_error_set(err, errno, "cannot open %s: %s", path, strerror(errno));
        if (flock(fd, LOCK_EX | LOCK_NB) < 0)
                return errno == EWOULDBLOCK
                           ? sk_error_set(err, EBUSY, "--data: another skerry dev is running on %s",
                                          dir)
                           : sk_error_set(err, errno, "cannot lock %s: %s", path, strerror(errno));
        return take_fd(&fd);
}

bool sk_dev_on_path(const char *name)
{
        const char *path = getenv("PATH");
        _cleanup_free_ char *copy = strdup(path ? path : "/usr/bin:/bin");
        char *save = NULL;
        for (char *d = copy ? strtok_r(copy, ":", &save) : NULL; d;
             d = strtok_r(NULL, ":", &save)) {
                _cleanup_free_ char *full = NULL;
                if (asprintf(&full, "%s/%s", d, name) >= 0 && access(full, X_OK) == 0)
                        return true;
        }
        return false;
}

int sk_dev_write_file(const char *path, const char *data, size_t len, int mode, sk_error **err)
{
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        if (fd < 0)
                return sk_error_set(err, errno, "cannot write %s: %s", path, strerror(errno));
        while (len > 0) {
                ssize_t n = write(fd, data, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return sk_error_set(err, errno, "cannot write %s: %s", path,
                                            strerror(errno));
                data += n;
                len -= (size_t)n;
        }
        return 0;
}

int sk_dev_spawn(const char *const *argv, const char *const *extra_env, const char *log_path,
                 pid_t *pid, sk_error **err)
{
        _cleanup_close_ int log = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (log < 0)
                return sk_error_set(err, errno, "cannot open %s: %s", log_path, strerror(errno));
        pid_t parent = getpid();
        pid_t p = fork();
        if (p < 0)
                return sk_error_set(err, errno, "fork: %s", strerror(errno));
        if (p == 0) {
                /* Own process group: a Ctrl-C in the terminal reaches only `skerry dev`,
                 * which then stops the children in order (agents before the runtime). */
                setpgid(0, 0);
                prctl(PR_SET_PDEATHSIG, SIGTERM);
                if (getppid() != parent)
                        _exit(127);
                sigset_t none;
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                signal(SIGINT, SIG_DFL);
                signal(SIGTERM, SIG_DFL);
                signal(SIGCHLD, SIG_DFL);
                signal(SIGPIPE, SIG_DFL);
                for (const char *const *e = extra_env; e && *e; e++)
                        putenv((char *)*e);
                int devnull = open("/dev/null", O_RDONLY);
                if (devnull >= 0)
                        dup2(devnull, 0);
                dup2(log, 1);
                dup2(log, 2);
                execvp(argv[0], (char *const *)argv);
                dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
                _exit(127);
        }
        setpgid(p, p); /* also here, so that the group exists when we return */
        *pid = p;
        return 0;
}

static long now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Waits up to ms for pid to exit; returns its status or -1 when it still runs. */
static int wait_for(pid_t pid, long ms)
{
        long deadline = now_ms() + ms;
        for (;;) {
                int st;
                pid_t r = waitpid(pid, &st, WNOHANG);
                if (r == pid)
                        return st;
                if (r < 0)
                        return errno == ECHILD ? 0 : -1;
                if (now_ms() >= deadline)
                        return -1;
                usleep(20000);
        }
}

int sk_dev_run(const char *const *argv)
{
        pid_t p = fork();
        if (p < 0)
                return -1;
        if (p == 0) {
                int devnull = open("/dev/null", O_RDWR);
                if (devnull >= 0) {
                        dup2(devnull, 0);
                        dup2(devnull, 1);
                        dup2(devnull, 2);
                }
                execvp(argv[0], (char *const *)argv);
                _exit(127);
        }
        int st;
        while (waitpid(p, &st, 0) < 0)
                if (errno != EINTR)
                        return -1;
        return st;
}

bool sk_dev_child_exited(pid_t pid, int *status)
{
        return pid > 0 && waitpid(pid, status, WNOHANG) == pid;
}

const char *sk_dev_describe_status(int status, char *buf, size_t len)
{
        if (WIFSIGNALED(status))
                snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(status),
                         strsignal(WTERMSIG(status)));
        else
                snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
        return buf;
}

int sk_dev_stop_pid(pid_t pid, int grace_ms)
{
        if (pid <= 0)
                return -1;
        kill(pid, SIGTERM);
        int st = wait_for(pid, grace_ms);
        if (st != -1)
                return st;
        kill(pid, SIGKILL);
        return wait_for(pid, 5000);
}

int sk_dev_kill_mentioning(const char *needle)
{
        __attribute__((cleanup(closedirp))) DIR *d = opendir("/proc");
        if (!d)
                return 0;
        int killed = 0;
        pid_t self = getpid();
        for (struct dirent *e; (e = readdir(d));) {
                char *end;
                long pid = strtol(e->d_name, &end, 10);
                if (*end || pid <= 1 || pid == self)
                        continue;
                char path[64];
                snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
                _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                char buf[8192];
                ssize_t n = read(fd, buf, sizeof(buf) - 1);
                if (n <= 0)
                        continue;
                for (ssize_t i = 0; i < n; i++)
                        if (buf[i] == '\0')
                                buf[i] = ' ';
                buf[n] = '\0';
                if (strstr(buf, needle) && kill((pid_t)pid, SIGKILL) == 0)
                        killed++;
        }
        return killed;
}

int sk_dev_free_port(sk_error **err)
{
        _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(a);
        if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
            getsockname(fd, (struct sockaddr *)&a, &len) < 0)
                return sk_error_set(err, errno, "cannot find a free port: %s", strerror(errno));
        return ntohs(a.sin_port);
}
