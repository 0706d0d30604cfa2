/* skerry tower backup|restore with real SQLite: a copy taken while a connection writes in
 * WAL mode holds every committed row and the other files; restore refuses a folder in use
 * and a damaged copy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "common/cleanup.h"
#include "tower/backup.h"

static char dir[64];

static char *at(const char *name)
{
        char *p = NULL;
        assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
        return p;
}

static void put(const char *path, const char *text)
{
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
}

static int count_rows(const char *path)
{
        sqlite3 *db = NULL;
        assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        sqlite3_stmt *st = NULL;
        assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &st, NULL),
                         SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        int n = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        sqlite3_close(db);
        return n;
}

static void test_backup_and_restore(void **state)
{
        strcpy(dir, "/tmp/sk-backup-XXXXXX");
        assert_non_null(mkdtemp(dir));
        _cleanup_free_ char *data = at("data"), *store = at("data/tower.db");
        _cleanup_free_ char *token = at("data/admin.token"), *bk = at("bk");
        assert_int_equal(mkdir(data, 0700), 0);
        put(token, "tok\n");
        /* a "running tower": WAL mode, rows committed but not checkpointed, still open */
        sqlite3 *live = NULL;
        assert_int_equal(sqlite3_open(store, &live), SQLITE_OK);
        assert_int_equal(sqlite3_exec(live,
                                      "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;"
                                      "CREATE TABLE t(x); WITH RECURSIVE n(i) AS (SELECT 1 "
                                      "UNION ALL SELECT i+1 FROM n WHERE i<5000) INSERT INTO t "
                                      "SELECT i FROM n;",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_tower_backup(data, bk, &err), 0);
        _cleanup_free_ char *bstore = at("bk/tower.db"), *btoken = at("bk/admin.token");
        assert_int_equal(count_rows(bstore), 5000);
        assert_int_equal(access(btoken, R_OK), 0);
        _cleanup_free_ char *wal = at("bk/tower.db-wal");
        assert_int_not_equal(access(wal, F_OK), 0); /* a standalone database, no log */
        /* a second backup into the same folder is refused */
        assert_int_equal(sk_tower_backup(data, bk, &err), -EEXIST);
        sk_error_free(&err);
        sqlite3_exec(live, "INSERT INTO t VALUES (1)", NULL, NULL, NULL);
        sqlite3_close(live);

        /* restore: never over a folder in use, fine into a new one */
        assert_int_equal(sk_tower_restore(bk, data, &err), -EEXIST);
        assert_non_null(strstr(err->msg, "not empty"));
        sk_error_free(&err);
        _cleanup_free_ char *fresh = at("fresh"), *fstore = at("fresh/tower.db");
        _cleanup_free_ char *ftoken = at("fresh/admin.token");
        assert_int_equal(sk_tower_restore(bk, fresh, &err), 0);
        assert_int_equal(count_rows(fstore), 5000);
        assert_int_equal(access(ftoken, R_OK), 0);

        /* a damaged copy is refused before anything is written */
        FILE *f = fopen(bstore, "r+");
        assert_non_null(f);
        fseek(f, 4096, SEEK_SET); /* the b-tree header of page 2 */
        for (int i = 0; i < 3000; i++)
                fputc(0x5a, f);
        fclose(f);
        _cleanup_free_ char *other = at("other");
        assert_true(sk_tower_restore(bk, other, &err) < 0);
        assert_int_not_equal(access(other, F_OK), 0);
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_backup_and_restore),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
