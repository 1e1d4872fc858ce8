/* SQLite replay of a BOKVTRC1 trace: sqlite_replay TRACE DIR
 * One table kv(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID in DIR/kv.db; journal_mode=WAL,
 * synchronous=FULL (the WAL is fsynced at every commit), other settings SQLite's defaults
 * (page size 4096, cache_size -2000 = 2 MB, wal_autocheckpoint 1000 pages). One connection,
 * opened with SQLITE_OPEN_NOMUTEX. One BEGIN ... COMMIT per commit interval; the commit op
 * upserts the meta under a reserved key first. Prepared statements for everything. The read
 * phase is one read transaction (BEGIN; SELECTs; COMMIT). BLOBs compare with memcmp, so
 * the table's order is the trace's key order.
 * Build: gcc -O2 -o sqlite_replay sqlite_replay.c -lsqlite3 */
#include "replay.h"
#include <sqlite3.h>

static sqlite3 *db;
static sqlite3_stmt *s_begin, *s_commit, *s_rollback, *s_upsert, *s_delete, *s_select, *s_scan;

static void fail(const char *what) { DIE("%s: %s", what, sqlite3_errmsg(db)); }

static void exec(const char *sql) {
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) DIE("%s: %s", sql, err ? err : "?");
}

static sqlite3_stmt *prepare(const char *sql) {
    sqlite3_stmt *s;
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK) fail(sql);
    return s;
}

/* Runs a statement that returns no rows. */
static void run(sqlite3_stmt *s) {
    if (sqlite3_step(s) != SQLITE_DONE) fail(sqlite3_sql(s));
    sqlite3_reset(s);
}

static const char *engine_name(void) {
    static char name[64];
    snprintf(name, sizeof name, "SQLite-%s", sqlite3_libversion());
    return name;
}

static void engine_open(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/kv.db", dir);
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
        DIE("open %s: %s", path, sqlite3_errmsg(db));
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=FULL");
    exec("CREATE TABLE kv(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID");
    s_begin = prepare("BEGIN");
    s_commit = prepare("COMMIT");
    s_rollback = prepare("ROLLBACK");
    s_upsert = prepare("INSERT INTO kv(k, v) VALUES(?1, ?2) ON CONFLICT(k) DO UPDATE SET v = excluded.v");
    s_delete = prepare("DELETE FROM kv WHERE k = ?1");
    s_select = prepare("SELECT v FROM kv WHERE k = ?1");
    s_scan = prepare("SELECT k, v FROM kv WHERE k >= ?1 ORDER BY k LIMIT ?2");
}

static void engine_begin_write(void) { run(s_begin); }

/* A zero-length value is bound as a zero-length BLOB, never as NULL. */
static void bind_blob(sqlite3_stmt *s, int i, const uint8_t *p, size_t n) {
    int rc = n ? sqlite3_bind_blob(s, i, p, (int)n, SQLITE_STATIC) : sqlite3_bind_zeroblob(s, i, 0);
    if (rc != SQLITE_OK) fail("bind");
}

static void engine_put(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
    bind_blob(s_upsert, 1, k, kl);
    bind_blob(s_upsert, 2, v, vl);
    run(s_upsert);
}

static void engine_delete(const uint8_t *k, size_t kl) {
    bind_blob(s_delete, 1, k, kl);
    run(s_delete);
}

static int get(const uint8_t *k, size_t kl, int *first) {
    bind_blob(s_select, 1, k, kl);
    int rc = sqlite3_step(s_select), found = 0;
    if (rc == SQLITE_ROW) {
        const uint8_t *v = sqlite3_column_blob(s_select, 0);
        int n = sqlite3_column_bytes(s_select, 0);
        *first = n > 0 && v ? v[0] : 0;
        found = 1;
    } else if (rc != SQLITE_DONE) fail("select");
    sqlite3_reset(s_select);
    return found;
}

static int engine_get_writer(const uint8_t *k, size_t kl, int *first) { return get(k, kl, first); }

static void engine_commit(const uint8_t *meta, size_t ml) {
    bind_blob(s_upsert, 1, META_KEY, sizeof META_KEY);
    bind_blob(s_upsert, 2, meta, ml);
    run(s_upsert);
    run(s_commit);
}

static void engine_abort_write(void) { run(s_rollback); }

static void engine_begin_read(void) { run(s_begin); }

static int engine_get_read(const uint8_t *k, size_t kl, int *first) { return get(k, kl, first); }

static void engine_scan(const uint8_t *k, size_t kl, uint32_t count, uint64_t *sum) {
    bind_blob(s_scan, 1, k, kl);
    sqlite3_bind_int64(s_scan, 2, count);
    int rc;
    while ((rc = sqlite3_step(s_scan)) == SQLITE_ROW) {
        const uint8_t *v = sqlite3_column_blob(s_scan, 1);
        int vn = sqlite3_column_bytes(s_scan, 1);
        int kn = sqlite3_column_bytes(s_scan, 0);
        *sum += (uint64_t)(vn > 0 && v ? v[0] : 0) + (uint64_t)kn;
    }
    if (rc != SQLITE_DONE) fail("scan");
    sqlite3_reset(s_scan);
}

static void engine_end_read(void) { run(s_commit); }

static void engine_close(void) {
    sqlite3_stmt *all[] = {s_begin, s_commit, s_rollback, s_upsert, s_delete, s_select, s_scan};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) sqlite3_finalize(all[i]);
    if (sqlite3_close(db) != SQLITE_OK) fail("close");
}
