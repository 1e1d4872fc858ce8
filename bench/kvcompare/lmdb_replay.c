/* LMDB replay of a BOKVTRC1 trace: lmdb_replay TRACE DIR
 * One write transaction per commit interval; the commit op puts the meta under a reserved
 * key in that transaction and commits. Default environment flags: mdb_txn_commit writes
 * the dirty pages and fdatasyncs, then writes the meta page and fdatasyncs again.
 * Map size 8 GiB. The read phase uses one read-only transaction and one cursor.
 * Build: gcc -O2 -o lmdb_replay lmdb_replay.c -llmdb */
#include "replay.h"
#include <lmdb.h>

static MDB_env *env;
static MDB_dbi dbi;
static MDB_txn *wtxn, *rtxn;
static MDB_cursor *rcur;

#define CHECK(call) do { int rc_ = (call); if (rc_ != 0) DIE("%s: %s", #call, mdb_strerror(rc_)); } while (0)

static const char *engine_name(void) { return "LMDB"; }

static void engine_open(const char *dir) {
    CHECK(mdb_env_create(&env));
    CHECK(mdb_env_set_mapsize(env, (size_t)8 << 30));
    CHECK(mdb_env_open(env, dir, 0, 0664));
    MDB_txn *t;
    CHECK(mdb_txn_begin(env, NULL, 0, &t));
    CHECK(mdb_dbi_open(t, NULL, 0, &dbi));
    CHECK(mdb_txn_commit(t));
}

static void engine_begin_write(void) { CHECK(mdb_txn_begin(env, NULL, 0, &wtxn)); }

static void engine_put(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
    MDB_val key = {kl, (void *)k}, val = {vl, (void *)v};
    CHECK(mdb_put(wtxn, dbi, &key, &val, 0));
}

static void engine_delete(const uint8_t *k, size_t kl) {
    MDB_val key = {kl, (void *)k};
    int rc = mdb_del(wtxn, dbi, &key, NULL);
    if (rc != 0 && rc != MDB_NOTFOUND) DIE("mdb_del: %s", mdb_strerror(rc));
}

static int get_in(MDB_txn *txn, const uint8_t *k, size_t kl, int *first) {
    MDB_val key = {kl, (void *)k}, val;
    int rc = mdb_get(txn, dbi, &key, &val);
    if (rc == MDB_NOTFOUND) return 0;
    if (rc != 0) DIE("mdb_get: %s", mdb_strerror(rc));
    *first = val.mv_size ? ((const uint8_t *)val.mv_data)[0] : 0;
    return 1;
}

static int engine_get_writer(const uint8_t *k, size_t kl, int *first) { return get_in(wtxn, k, kl, first); }

static void engine_commit(const uint8_t *meta, size_t ml) {
    MDB_val key = {sizeof META_KEY, (void *)META_KEY}, val = {ml, (void *)meta};
    CHECK(mdb_put(wtxn, dbi, &key, &val, 0));
    CHECK(mdb_txn_commit(wtxn));
    wtxn = NULL;
}

static void engine_abort_write(void) { mdb_txn_abort(wtxn); wtxn = NULL; }

static void engine_begin_read(void) {
    CHECK(mdb_txn_begin(env, NULL, MDB_RDONLY, &rtxn));
    CHECK(mdb_cursor_open(rtxn, dbi, &rcur));
}

static int engine_get_read(const uint8_t *k, size_t kl, int *first) { return get_in(rtxn, k, kl, first); }

static void engine_scan(const uint8_t *k, size_t kl, uint32_t count, uint64_t *sum) {
    MDB_val key = {kl, (void *)k}, val;
    int rc = mdb_cursor_get(rcur, &key, &val, MDB_SET_RANGE);
    for (uint32_t n = 0; rc == 0 && n < count; n++) {
        *sum += (uint64_t)(val.mv_size ? ((const uint8_t *)val.mv_data)[0] : 0) + key.mv_size;
        rc = mdb_cursor_get(rcur, &key, &val, MDB_NEXT);
    }
    if (rc != 0 && rc != MDB_NOTFOUND) DIE("mdb_cursor_get: %s", mdb_strerror(rc));
}

static void engine_end_read(void) {
    mdb_cursor_close(rcur);
    mdb_txn_abort(rtxn);
}

static void engine_close(void) { mdb_env_close(env); }
