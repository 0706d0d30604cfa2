/* `skerry tower backup|restore`: a copy of a tower's data folder taken while it runs. The
 * SQLite store goes through SQLite's online backup API (a consistent snapshot; writers
 * wait at most a moment), the other files (CA, keys, admin token) are copied as they are.
 * A PostgreSQL store is backed up with PostgreSQL's tools; this copies only the keys. */
#ifndef SK_TOWER_BACKUP_H
#define SK_TOWER_BACKUP_H

#include "common/error.h"

/* Writes data_dir's store and files into to_dir, which must not exist yet (made 0700).
 * The copy's store passes `PRAGMA integrity_check`. */
int sk_tower_backup(const char *data_dir, const char *to_dir, sk_error **err);

/* Copies a backup into data_dir, which must not exist yet or be empty (a tower is never
 * restored over a running one's folder); checks the store's integrity first. */
int sk_tower_restore(const char *from_dir, const char *data_dir, sk_error **err);

/* `skerry tower backup --data DIR --to DIR` and `skerry tower restore --from DIR --data
 * DIR`; argv[0] is "backup" or "restore". Returns an exit code. */
int sk_tower_backup_main(int argc, char **argv);

#endif
