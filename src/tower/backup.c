#include "tower/backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"

#define STORE "tower.db"

static void closedirp(DIR **d)
{
        if (*d)
                closedir(*d);
}

static void sqlite_closep(sqlite3 **db)
{
        sqlite3_close(*db);
}

/* The store's own files: the live database and its write-ahead log. */
static bool store_file(const char *name)
{
        return strncmp(name, STORE, strlen(STORE)) == 0;
}

static int copy_file(const char *from, const char *to, mode_t mode, sk_error **err)
{
        int in = open(from, O_RDONLY | O_CLOEXEC);
        if (in < 0)
                return sk_error_set(err, errno, "%s: %s", from, strerror(errno));
        int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 07777);
        if (out < 0) {
                int e = errno;
                close(in);
                return sk_error_set(err, e, "%s: %s", to, strerror(e));
        }
        char buf[65536];
        ssize_t n;
        int r = 0;
        while ((n = read(in, buf, sizeof(buf))) > 0)
                if (write(out, buf, (size_t)n) != n) {
                        r = sk_error_set(err, errno ? errno : EIO, "%s: %s", to,
                                         strerror(errno ? errno : EIO));
                        break;
                }
        if (n < 0 && r == 0)
                r = sk_error_set(err, errno, "%s: %s", from, strerror(errno));
        if (r == 0 && fsync(out) < 0)
                r = sk_error_set(err, errno, "%s: %s", to, strerror(errno));
        close(in);
        close(out);
        return r;
}

/* Every regular file of from (but the store's) into to. */
static int copy_files(const char *from, const char *to, sk_error **err)
{
        __attribute__((cleanup(closedirp))) DIR *d = opendir(from);
        if (!d)
                return sk_error_set(err, errno, "%s: %s", from, strerror(errno));
        struct dirent *e;
        while ((e = readdir(d))) {
                if (store_file(e->d_name))
                        continue;
                _cleanup_free_ char *src = NULL, *dst = NULL;
                if (asprintf(&src, "%s/%s", from, e->d_name) < 0 ||
                    asprintf(&dst, "%s/%s", to, e->d_name) < 0)
                        return sk_error_set(err, ENOMEM, "out of memory");
                struct stat st;
                if (lstat(src, &st) < 0 || !S_ISREG(st.st_mode))
                        continue;
                int r = copy_file(src, dst, st.st_mode, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int check_integrity(sqlite3 *db, const char *path, sk_error **err)
{
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL);
        const char *res = rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW
                              ? (const char *)sqlite3_column_text(st, 0)
                              : NULL;
        int r = res && strcmp(res, "ok") == 0
                    ? 0
                    : sk_error_set(err, EIO, "%s: integrity check failed: %s", path,
                                   res ? res : sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return r;
}

/* from (a live store) into to with the online backup API: readers and writers of the
 * running tower go on; a step that finds the database busy is retried. */
static int backup_store(const char *from, const char *to, sk_error **err)
{
        __attribute__((cleanup(sqlite_closep))) sqlite3 *src = NULL;
        __attribute__((cleanup(sqlite_closep))) sqlite3 *dst = NULL;
        if (sqlite3_open_v2(from, &src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
                return sk_error_set(err, EIO, "%s: %s", from, sqlite3_errmsg(src));
        if (sqlite3_open_v2(to, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
            SQLITE_OK)
                return sk_error_set(err, EIO, "%s: %s", to, sqlite3_errmsg(dst));
        sqlite3_busy_timeout(src, 5000);
        sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
        if (!b)
                return sk_error_set(err, EIO, "%s: %s", to, sqlite3_errmsg(dst));
        int rc;
        do {
                rc = sqlite3_backup_step(b, 256);
                if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
                        sqlite3_sleep(50);
        } while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
        sqlite3_backup_finish(b);
        if (rc != SQLITE_DONE)
                return sk_error_set(err, EIO, "backup of %s: %s", from, sqlite3_errstr(rc));
        /* one self-contained file (the tower turns WAL on again when it opens it) */
        if (sqlite3_exec(dst, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL) != SQLITE_OK)
                return sk_error_set(err, EIO, "%s: %s", to, sqlite3_errmsg(dst));
        return check_integrity(dst, to, err);
}

int sk_tower_backup(const char *data_dir, const char *to_dir, sk_error **err)
{
        if (mkdir(to_dir, 0700) < 0)
                return sk_error_set(err, errno, "%s: %s%s", to_dir, strerror(errno),
                                    errno == EEXIST ? " (a backup goes into a new folder)" : "");
        _cleanup_free_ char *from = NULL, *to = NULL;
        if (asprintf(&from, "%s/" STORE, data_dir) < 0 || asprintf(&to, "%s/" STORE, to_dir) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        if (access(from, F_OK) == 0) {
                int r = backup_store(from, to, err);
                if (r < 0)
                        return r;
        } else if (access(data_dir, F_OK) < 0) {
                return sk_error_set(err, errno, "%s: %s", data_dir, strerror(errno));
        }
        return copy_files(data_dir, to_dir, err);
}

static int empty_or_new(const char *dir, sk_error **err)
{
        __attribute__((cleanup(closedirp))) DIR *d = opendir(dir);
        if (!d && errno == ENOENT)
                return mkdir(dir, 0700) < 0
                           ? sk_error_set(err, errno, "%s: %s", dir, strerror(errno))
                           : 0;
        if (!d)
                return sk_error_set(err, errno, "%s: %s", dir, strerror(errno));
        struct dirent *e;
        while ((e = readdir(d)))
                if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                        return sk_error_set(err, EEXIST,
                                            "%s is not empty: restore into a new folder, then "
                                            "point the tower's --data at it",
                                            dir);
        return 0;
}

int sk_tower_restore(const char *from_dir, const char *data_dir, sk_error **err)
{
        _cleanup_free_ char *from = NULL, *to = NULL;
        if (asprintf(&from, "%s/" STORE, from_dir) < 0 || asprintf(&to, "%s/" STORE, data_dir) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        struct stat st;
        bool has_store = stat(from, &st) == 0;
        if (has_store) {
                __attribute__((cleanup(sqlite_closep))) sqlite3 *db = NULL;
                if (sqlite3_open_v2(from, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
                        return sk_error_set(err, EIO, "%s: %s", from, sqlite3_errmsg(db));
                int r = check_integrity(db, from, err);
                if (r < 0)
                        return r;
        } else if (access(from_dir, F_OK) < 0) {
                return sk_error_set(err, errno, "%s: %s", from_dir, strerror(errno));
        }
        int r = empty_or_new(data_dir, err);
        if (r == 0 && has_store)
                r = copy_file(from, to, st.st_mode, err);
        return r < 0 ? r : copy_files(from_dir, data_dir, err);
}

static int usage(FILE *f, int rc)
{
        fputs("usage: skerry tower backup --data DIR --to NEWDIR\n"
              "       skerry tower restore --from BACKUPDIR --data NEWDIR\n"
              "\n"
              "backup copies a tower's data folder while the tower runs: the SQLite store\n"
              "through SQLite's online backup API, and the CA, keys and admin token as they\n"
              "are. restore checks the copy and writes it into an empty or new folder; start\n"
              "the tower with --data on it.\n",
              f);
        return rc;
}

int sk_tower_backup_main(int argc, char **argv)
{
        static const struct option opts[] = {{"data", required_argument, NULL, 'd'},
                                             {"to", required_argument, NULL, 't'},
                                             {"from", required_argument, NULL, 'f'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
        const char *data = NULL, *to = NULL, *from = NULL;
        bool backup = strcmp(argv[0], "backup") == 0;
        optind = 1;
        opterr = 0;
        int ch;
        while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
                if (ch == 'd')
                        data = optarg;
                else if (ch == 't')
                        to = optarg;
                else if (ch == 'f')
                        from = optarg;
                else if (ch == 'h')
                        return usage(stdout, 0);
                else
                        return usage(stderr, 2);
        }
        if (optind < argc || !data || (backup ? !to || from : !from || to))
                return usage(stderr, 2);
        _cleanup_error_ sk_error *err = NULL;
        int r = backup ? sk_tower_backup(data, to, &err) : sk_tower_restore(from, data, &err);
        if (r < 0) {
                fprintf(stderr, "skerry tower %s: %s\n", argv[0], sk_error_msg(err, r));
                return 1;
        }
        printf("%s %s\n", backup ? "backed up into" : "restored into", backup ? to : data);
        return 0;
}
