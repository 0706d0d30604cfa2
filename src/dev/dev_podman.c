/* The private Podman API service of `skerry dev`: a store under DIR/podman that touches
 * nothing of the machine's own containers, with localhost/busybox:latest imported from the
 * static busybox so that the first example runs offline (see ../shared/MACHINE-NOTES.md). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/httpc.h"
#include "common/log.h"
#include "dev/dev-internal.h"
#include "host/runtime.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

#define API "/v1.41"

/* Applets linked in the image when `busybox --list` cannot tell. */
static const char *const default_applets[] = {
    "sh",    "ash",  "cat",  "echo",  "env",   "false", "grep",   "hostname", "httpd",
    "id",    "kill", "ls",   "mkdir", "nc",    "ps",    "printf", "rm",       "sed",
    "sleep", "tail", "test", "top",   "touch", "true",  "wget",   "date",     "uname",
};

static const char passwd[] = "root:x:0:0:root:/root:/bin/sh\n"
                             "nobody:x:65534:65534:nobody:/:/bin/false\n";
static const char group[] = "root:x:0:\nnogroup:x:65534:\n";
static const char index_html[] = "<h1>hello from skerry</h1>\n";

/* One ustar header block. */
static int tar_header(FILE *f, const char *name, char type, unsigned mode, uint64_t size,
                      const char *link)
{
        unsigned char h[512] = {0};
        if (strlen(name) >= 100 || (link && strlen(link) >= 100))
                return -ENAMETOOLONG;
        memcpy(h, name, strlen(name));
        snprintf((char *)h + 100, 8, "%07o", mode);
        snprintf((char *)h + 108, 8, "%07o", 0);
        snprintf((char *)h + 116, 8, "%07o", 0);
        snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)size);
        snprintf((char *)h + 136, 12, "%011llo", (unsigned long long)time(NULL));
        memset(h + 148, ' ', 8);
        h[156] = (unsigned char)type;
        if (link)
                memcpy(h + 157, link, strlen(link));
        memcpy(h + 257, "ustar", 6);
        memcpy(h + 263, "00", 2);
        memcpy(h + 265, "root", 4);
        memcpy(h + 297, "root", 4);
        unsigned sum = 0;
        for (size_t i = 0; i < sizeof(h); i++)
                sum += h[i];
        snprintf((char *)h + 148, 8, "%06o", sum);
        h[155] = ' ';
        return fwrite(h, 1, sizeof(h), f) == sizeof(h) ? 0 : -EIO;
}

static int tar_data(FILE *f, const void *data, size_t len)
{
        static const char zeros[512];
        size_t pad = (512 - len % 512) % 512;
        if (fwrite(data, 1, len, f) != len || fwrite(zeros, 1, pad, f) != pad)
                return -EIO;
        return 0;
}

static int tar_link(FILE *f, const char *applet)
{
        char name[100];
        if (!*applet || strchr(applet, '/') || !strcmp(applet, "busybox"))
                return 0;
        snprintf(name, sizeof(name), "bin/%s", applet);
        return tar_header(f, name, '2', 0777, 0, "busybox");
}

/* One bin/ link per applet the binary has; a fixed list when it cannot say. */
static int tar_applets(FILE *f, const char *busybox_path)
{
        _cleanup_free_ char *cmd = NULL;
        if (asprintf(&cmd, "'%s' --list 2>/dev/null", busybox_path) < 0)
                return -ENOMEM;
        FILE *p = strchr(busybox_path, '\'') ? NULL : popen(cmd, "re");
        int r = 0, n = 0;
        if (p) {
                char line[128];
                while (r == 0 && fgets(line, sizeof(line), p)) {
                        line[strcspn(line, "\n")] = '\0';
                        r = tar_link(f, line);
                        n++;
                }
                if (pclose(p) != 0)
                        n = 0;
        }
        for (size_t i = 0; r == 0 && n == 0 && i < SK_ARRAY_SIZE(default_applets); i++)
                r = tar_link(f, default_applets[i]);
        return r;
}

static int read_all(const char *path, char **data, size_t *len, sk_error **err)
{
        _cleanup_fclose_ FILE *f = fopen(path, "rbe");
        struct stat st;
        if (!f || fstat(fileno(f), &st) < 0)
                return sk_error_set(err, errno, "cannot read %s: %s", path, strerror(errno));
        _cleanup_free_ char *buf = malloc((size_t)st.st_size + 1);
        if (!buf)
                return sk_error_set(err, ENOMEM, "out of memory");
        if (fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
                return sk_error_set(err, EIO, "cannot read %s", path);
        *len = (size_t)st.st_size;
        *data = take_ptr(&buf);
        return 0;
}

int sk_dev_busybox_tar(const char *busybox_path, const char *tar_path, sk_error **err)
{
        _cleanup_free_ char *bin = NULL;
        size_t bin_len = 0;
        int r = read_all(busybox_path, &bin, &bin_len, err);
        if (r < 0)
                return sk_error_prefix(err, "the busybox image needs busybox-static"), r;
        if (bin_len < 4 || memcmp(bin, "\177ELF", 4) != 0)
                return sk_error_set(err, EINVAL, "%s is not an executable", busybox_path);
        _cleanup_fclose_ FILE *f = fopen(tar_path, "wbe");
        if (!f)
                return sk_error_set(err, errno, "cannot write %s: %s", tar_path, strerror(errno));
        r = tar_header(f, "bin/", '5', 0755, 0, NULL);
        r = r ?: tar_header(f, "bin/busybox", '0', 0755, bin_len, NULL);
        r = r ?: tar_data(f, bin, bin_len);
        r = r ?: tar_applets(f, busybox_path);
        const char *dirs[] = {"dev/", "proc/", "sys/", "etc/", "root/"};
        for (size_t i = 0; r == 0 && i < SK_ARRAY_SIZE(dirs); i++)
                r = tar_header(f, dirs[i], '5', 0755, 0, NULL);
        r = r ?: tar_header(f, "etc/passwd", '0', 0644, strlen(passwd), NULL);
        r = r ?: tar_data(f, passwd, strlen(passwd));
        r = r ?: tar_header(f, "etc/group", '0', 0644, strlen(group), NULL);
        r = r ?: tar_data(f, group, strlen(group));
        r = r ?: tar_header(f, "tmp/", '5', 01777, 0, NULL);
        r = r ?: tar_header(f, "www/", '5', 0755, 0, NULL);
        r = r ?: tar_header(f, "www/index.html", '0', 0644, strlen(index_html), NULL);
        r = r ?: tar_data(f, index_html, strlen(index_html));
        static const char end[1024];
        if (r == 0 && fwrite(end, 1, sizeof(end), f) != sizeof(end))
                r = -EIO;
        if (r == 0 && fflush(f) != 0)
                r = -errno;
        if (r < 0)
                return sk_error_set(err, -r, "cannot write %s: %s", tar_path, strerror(-r));
        return 0;
}

bool sk_dev_crun_usable(void)
{
        struct statfs fs;
        /* crun refuses cgroup v1 and hybrid hierarchies ("cgroups in hybrid mode not
         * supported"); only a pure v2 mount at /sys/fs/cgroup is safe. */
        if (statfs("/sys/fs/cgroup", &fs) < 0 || fs.f_type != CGROUP2_SUPER_MAGIC)
                return false;
        return access("/usr/bin/crun", X_OK) == 0 || access("/usr/local/bin/crun", X_OK) == 0;
}

char *sk_dev_containers_conf(const char *dir, bool use_runc)
{
        char *s = NULL;
        /* Hard nofile/nproc limits here are 20000: the runtime's defaults exceed them and
         * containers then fail with "error setting rlimit type 7". */
        int r = asprintf(&s,
                         "[containers]\n"
                         "default_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n"
                         "log_driver = \"k8s-file\"\n"
                         "\n"
                         "[engine]\n"
                         "%s"
                         "cgroup_manager = \"cgroupfs\"\n"
                         "events_logger = \"file\"\n"
                         "events_logfile_path = \"%s/tmp/events.log\"\n"
                         "tmp_dir = \"%s/tmp\"\n"
                         "volume_path = \"%s/volumes\"\n"
                         "\n"
                         "[network]\n"
                         "network_config_dir = \"%s/networks\"\n",
                         use_runc ? "runtime = \"runc\"\n" : "", dir, dir, dir, dir);
        return r < 0 ? NULL : s;
}

static int runtime_client(const char *socket, sk_httpc **c, sk_error **err)
{
        sk_httpc_opts o = {
            .base_url = "http://d", .unix_socket = socket, .connect_timeout_ms = 2000};
        return sk_httpc_new(&o, c, err);
}

int sk_dev_runtime_wait(const char *socket, int timeout_ms, pid_t watch, sk_error **err)
{
        _cleanup_httpc_ sk_httpc *c = NULL;
        int r = runtime_client(socket, &c, err);
        if (r < 0)
                return r;
        for (int waited = 0;; waited += 100) {
                _cleanup_response_ sk_http_response resp = {0};
                if (sk_httpc_request(c, "GET", "/_ping", NULL, 0, NULL, 2000, &resp, NULL) == 0 &&
                    resp.status == 200)
                        return 0;
                if (sk_dev_interrupted)
                        return sk_error_set(err, EINTR, "interrupted");
                int st;
                char how[64];
                if (watch > 0 && sk_dev_child_exited(watch, &st))
                        return sk_error_set(err, ECHILD, "the container runtime %s",
                                            sk_dev_describe_status(st, how, sizeof(how)));
                if (waited >= timeout_ms)
                        return sk_error_set(err, ETIMEDOUT,
                                            "the container runtime at %s did not answer within "
                                            "%d s",
                                            socket, timeout_ms / 1000);
                usleep(100000);
        }
}

static int import_busybox(const char *socket, const char *dir, sk_error **err)
{
        _cleanup_httpc_ sk_httpc *c = NULL;
        int r = runtime_client(socket, &c, err);
        if (r < 0)
                return r;
        _cleanup_response_ sk_http_response have = {0};
        r = sk_httpc_request(c, "GET", API "/images/localhost/busybox:latest/json", NULL, 0, NULL,
                             30000, &have, err);
        if (r < 0)
                return r;
        if (have.status == 200)
                return 0;
        _cleanup_free_ char *tar = NULL;
        if (asprintf(&tar, "%s/busybox.tar", dir) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        r = sk_dev_busybox_tar("/bin/busybox", tar, err);
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        r = r ?: read_all(tar, &data, &len, err);
        unlink(tar);
        if (r < 0)
                return r;
        _cleanup_response_ sk_http_response resp = {0};
        r = sk_httpc_request(c, "POST",
                             "/v4.0.0/libpod/images/import?reference=localhost%2Fbusybox%3Alatest"
                             "&changes=CMD%20%5B%22%2Fbin%2Fsh%22%5D",
                             data, len, "application/x-tar", 120000, &resp, err);
        if (r < 0)
                return r;
        if (resp.status != 200)
                return sk_error_set(err, EIO, "importing localhost/busybox:latest: HTTP %ld: %s",
                                    resp.status, resp.body);
        return 0;
}

int sk_dev_podman_start(const char *dir, const char *log_path, sk_dev_podman *p, sk_error **err)
{
        *p = (sk_dev_podman){0};
        _cleanup_free_ char *root = NULL, *netdir = NULL, *tmpdir = NULL, *volumes = NULL,
                            *conf_path = NULL, *conf = NULL, *conf_env = NULL, *sock_url = NULL,
                            *storage = NULL, *storage_path = NULL, *storage_env = NULL;
        if (asprintf(&p->dir, "%s", dir) < 0 || asprintf(&p->socket, "%s/podman.sock", dir) < 0 ||
            asprintf(&root, "%s/root", dir) < 0 || asprintf(&p->runroot, "%s/runroot", dir) < 0 ||
            asprintf(&netdir, "%s/networks", dir) < 0 || asprintf(&tmpdir, "%s/tmp", dir) < 0 ||
            asprintf(&volumes, "%s/volumes", dir) < 0 ||
            asprintf(&conf_path, "%s/containers.conf", dir) < 0 ||
            asprintf(&conf_env, "CONTAINERS_CONF=%s", conf_path) < 0 ||
            asprintf(&storage_path, "%s/storage.conf", dir) < 0 ||
            asprintf(&storage_env, "CONTAINERS_STORAGE_CONF=%s", storage_path) < 0 ||
            asprintf(&sock_url, "unix://%s", p->socket) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        if (strlen(p->socket) >= sizeof(((struct sockaddr_un *)0)->sun_path))
                return sk_error_set(err, ENAMETOOLONG,
                                    "--data: %s is too long for a unix socket path; pick a "
                                    "shorter folder",
                                    p->socket);
        if (!sk_dev_on_path("podman"))
                return sk_error_set(err, ENOENT,
                                    "podman is not installed (scripts/install-deps.sh), or "
                                    "give --runtime unix:///SOCKET of a running one");
        /* Podman refuses a runroot longer than 50 characters (it holds socket paths). */
        if (strlen(p->runroot) > 50) {
                free(p->runroot);
                p->runroot = strdup("/tmp/skerry-dev-run-XXXXXX");
                if (!p->runroot || !mkdtemp(p->runroot))
                        return sk_error_set(err, errno ? errno : ENOMEM,
                                            "cannot make a runroot folder under /tmp: %m");
                p->runroot_is_temp = true;
        }
        const char *runroot = p->runroot;
        int r = 0;
        const char *dirs[] = {dir, root, runroot, netdir, tmpdir, volumes};
        for (size_t i = 0; r == 0 && i < SK_ARRAY_SIZE(dirs); i++)
                r = sk_dev_mkdirs(dirs[i], err);
        if (r < 0)
                return r;
        if (!(conf = sk_dev_containers_conf(dir, !sk_dev_crun_usable())) ||
            asprintf(&storage,
                     "[storage]\ndriver = \"overlay\"\ngraphroot = \"%s\"\n"
                     "runroot = \"%s\"\n",
                     root, runroot) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        r = sk_dev_write_file(conf_path, conf, strlen(conf), 0644, err);
        r = r ?: sk_dev_write_file(storage_path, storage, strlen(storage), 0644, err);
        if (r < 0)
                return r;
        unlink(p->socket);
        const char *argv[] = {"podman",  "--root",
                              root,      "--runroot",
                              runroot,   "--network-config-dir",
                              netdir,    "--tmpdir",
                              tmpdir,    "--volumepath",
                              volumes,   "system",
                              "service", "--time=0",
                              sock_url,  NULL};
        const char *env[] = {conf_env, storage_env, NULL};
        r = sk_dev_spawn(argv, env, log_path, &p->pid, err);
        if (r < 0)
                return sk_error_prefix(err, "starting podman"), r;
        r = sk_dev_runtime_wait(p->socket, 30000, p->pid, err);
        if (r < 0) {
                if (r == -ECHILD) /* already reaped */
                        p->pid = 0;
                return sk_error_prefix(err, "podman (log: %s)", log_path), r;
        }
        r = import_busybox(p->socket, dir, err);
        if (r < 0)
                return sk_error_prefix(err, "podman (log: %s)", log_path), r;
        return 0;
}

/* runc keeps the state of every store's containers in /run/runc: delete the ones whose
 * bundle is in our store, in case the service died before it removed them. */
static void reap_runc(const char *root)
{
        DIR *d = opendir("/run/runc");
        if (!d)
                return;
        for (struct dirent *e; (e = readdir(d));) {
                _cleanup_free_ char *bundle = NULL;
                if (e->d_name[0] == '.' ||
                    asprintf(&bundle, "%s/overlay-containers/%s", root, e->d_name) < 0 ||
                    access(bundle, F_OK) != 0)
                        continue;
                const char *kill_argv[] = {"runc", "kill", e->d_name, "KILL", NULL};
                const char *del_argv[] = {"runc", "delete", "--force", e->d_name, NULL};
                sk_dev_run(kill_argv);
                sk_dev_run(del_argv);
        }
        closedir(d);
}

/* Overlay and shm mounts the store leaves behind, deepest first, so DIR can be deleted. */
static void unmount_under(const char *dir)
{
        _cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
        if (!f)
                return;
        char **mounts = NULL;
        size_t n = 0;
        char line[4096], point[4096];
        size_t dlen = strlen(dir);
        while (fgets(line, sizeof(line), f)) {
                /* id parent major:minor root mountpoint ... */
                if (sscanf(line, "%*s %*s %*s %*s %4095s", point) != 1 ||
                    strncmp(point, dir, dlen) != 0 || point[dlen] != '/')
                        continue;
                char **grown = realloc(mounts, (n + 1) * sizeof(*mounts));
                if (!grown)
                        break;
                mounts = grown;
                if ((mounts[n] = strdup(point)))
                        n++;
        }
        for (size_t i = n; i-- > 0;) {
                if (umount2(mounts[i], 0) < 0)
                        umount2(mounts[i], MNT_DETACH);
                free(mounts[i]);
        }
        free(mounts);
}

void sk_dev_podman_stop(sk_dev_podman *p)
{
        if (p->pid > 0 && p->socket) {
                /* Our private store: nothing in it outlives `skerry dev`. */
                _cleanup_error_ sk_error *err = NULL;
                int r = sk_dev_remove_containers(p->socket, NULL, &err);
                if (r < 0)
                        sk_warn("removing the containers of %s: %s", p->dir, sk_error_msg(err, r));
        }
        if (p->pid > 0)
                sk_dev_stop_pid(p->pid, 10000);
        p->pid = 0;
        if (p->dir) {
                /* conmon double-forks away from the service; it lives on only when a container
                 * outlived the removal above. Its command line names our store. */
                _cleanup_free_ char *root = NULL, *mine = NULL;
                if (asprintf(&root, "%s/root", p->dir) >= 0 &&
                    asprintf(&mine, "%s/", p->dir) >= 0) {
                        if (sk_dev_kill_mentioning(mine) > 0)
                                sk_warn("killed processes left under %s", p->dir);
                        reap_runc(root);
                        unmount_under(p->dir);
                }
                unlink(p->socket);
        }
        if (p->runroot_is_temp) {
                sk_dev_kill_mentioning(p->runroot);
                unmount_under(p->runroot);
                const char *rm_argv[] = {"rm", "-rf", p->runroot, NULL};
                sk_dev_run(rm_argv);
        }
        free(p->dir);
        free(p->socket);
        free(p->runroot);
        *p = (sk_dev_podman){0};
}

/* Through the agent's own runtime driver, so dev and agents see containers the same way. */
int sk_dev_remove_containers(const char *socket, const char *const *sites, sk_error **err)
{
        _cleanup_free_ char *url = NULL;
        if (asprintf(&url, "unix://%s", socket) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        sk_runtime *rt = NULL;
        int r = sk_runtime_docker_new(url, &rt, err);
        if (r < 0)
                return r;
        int removed = 0;
        static const char *const every[] = {NULL};
        const char *const *site = sites ? sites : every;
        do {
                /* No site: every container of the (private) store. */
                _cleanup_json_ json_t *filter =
                    *site ? json_pack("{s:s}", "skerry.site", *site) : json_object();
                sk_container_list list = {0};
                r = filter ? rt->ops->list(rt, filter, &list, err)
                           : sk_error_set(err, ENOMEM, "out of memory");
                for (size_t i = 0; r == 0 && i < list.n; i++) {
                        _cleanup_error_ sk_error *e = NULL;
                        int d = rt->ops->remove(rt, list.items[i].id, true, &e);
                        if (d == 0 || d == -ENOENT)
                                removed++;
                        else
                                sk_warn("cannot remove container %.12s: %s", list.items[i].id,
                                        sk_error_msg(e, d));
                }
                sk_container_list_clear(&list);
        } while (r == 0 && *site && *++site);
        rt->ops->free(rt);
        return r < 0 ? r : removed;
}
