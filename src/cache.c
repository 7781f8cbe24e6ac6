/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * cache.c - the node-local registry cache; see cache.h for the argument.
 */
#include "cache.h"

#include "apr_shm.h"
#include "apr_general.h"

#include <sched.h>
#include <string.h>

#define CS_BUCKET 8

typedef struct {
    apr_uint32_t seq;           /* sequence lock: odd while written */
    apr_uint32_t used;
    unsigned char hash[16];     /* two keyed SipHashes of the key */
    cs_entry_t e;
    cs_local_t local;           /* this node's copy of e, if verified */
} cs_slot_t;

typedef struct {
    apr_uint64_t epoch;         /* bumped by every invalidation */
    apr_int64_t lease_until;    /* apr_time_t; 0: no lease */
    apr_uint64_t nbuckets;
    apr_uint64_t hits, misses, invalidations;
    unsigned char sipkey[32];   /* random per httpd: slots cannot be aimed */
} cs_cache_hdr_t;

struct cs_cache_t {
    cs_cache_hdr_t *hdr;
    cs_slot_t *slots;
};

static void cs_slot_lock(cs_slot_t *s, apr_uint32_t *seq);
static void cs_slot_unlock(cs_slot_t *s, apr_uint32_t seq);

apr_status_t cs_cache_create(apr_pool_t *p, apr_size_t slots,
                             cs_cache_t **cp)
{
    cs_cache_t *c = apr_pcalloc(p, sizeof(*c));
    apr_uint64_t nb = (slots + CS_BUCKET - 1) / CS_BUCKET;
    apr_size_t size;
    apr_shm_t *shm;
    apr_status_t rv;

    if (nb == 0) {
        nb = 1;
    }
    size = sizeof(cs_cache_hdr_t) + nb * CS_BUCKET * sizeof(cs_slot_t);
    rv = apr_shm_create(&shm, size, NULL, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    c->hdr = apr_shm_baseaddr_get(shm);
    memset(c->hdr, 0, size);
    c->hdr->nbuckets = nb;
    rv = apr_generate_random_bytes(c->hdr->sipkey, sizeof(c->hdr->sipkey));
    if (rv != APR_SUCCESS) {
        return rv;
    }
    c->slots = (cs_slot_t *)(c->hdr + 1);
    *cp = c;
    return APR_SUCCESS;
}

static cs_slot_t *cs_bucket(cs_cache_t *c, const unsigned char *hash)
{
    apr_uint64_t h;

    memcpy(&h, hash, sizeof(h));
    return c->slots + (h % c->hdr->nbuckets) * CS_BUCKET;
}

/* 128 bits, so that two keys sharing a slot is not a practical event;
 * keyed, so that clients cannot choose keys that crowd one bucket. */
static void cs_hash(cs_cache_t *c, const char *key, unsigned char out[16])
{
    size_t len = strlen(key);
    apr_uint64_t h[2];

    h[0] = cs_siphash24(c->hdr->sipkey, key, len);
    h[1] = cs_siphash24(c->hdr->sipkey + 16, key, len);
    memcpy(out, h, 16);
}

int cs_cache_lease_valid(cs_cache_t *c)
{
    return c && apr_time_now()
                < __atomic_load_n(&c->hdr->lease_until, __ATOMIC_ACQUIRE);
}

apr_time_t cs_cache_lease(cs_cache_t *c)
{
    return c ? __atomic_load_n(&c->hdr->lease_until, __ATOMIC_ACQUIRE) : 0;
}

/* Forget everything: writers skipped this node while its lease had
 * lapsed, so nothing it knew from before can be trusted. */
static void cs_cache_wipe(cs_cache_t *c)
{
    apr_uint64_t i, n = c->hdr->nbuckets * CS_BUCKET;
    apr_uint32_t seq;

    __atomic_fetch_add(&c->hdr->epoch, 1, __ATOMIC_SEQ_CST);
    for (i = 0; i < n; i++) {
        if (c->slots[i].used) {
            cs_slot_lock(&c->slots[i], &seq);
            c->slots[i].used = 0;
            cs_slot_unlock(&c->slots[i], seq);
        }
    }
}

void cs_cache_flush(cs_cache_t *c)
{
    if (c) {
        __atomic_fetch_add(&c->hdr->invalidations, 1, __ATOMIC_RELAXED);
        cs_cache_wipe(c);
    }
}

void cs_cache_set_lease(cs_cache_t *c, apr_time_t until)
{
    if (c) {
        if (until > 0 && apr_time_now()
            >= __atomic_load_n(&c->hdr->lease_until, __ATOMIC_ACQUIRE)) {
            cs_cache_wipe(c);   /* renewing after a lapse */
        }
        __atomic_store_n(&c->hdr->lease_until, until, __ATOMIC_RELEASE);
    }
}

int cs_cache_get(cs_cache_t *c, const char *key, cs_entry_t *e,
                 cs_local_t *local)
{
    unsigned char hash[16];
    cs_slot_t *b;
    int i;

    if (!cs_cache_lease_valid(c)) {
        return 0;
    }
    cs_hash(c, key, hash);
    b = cs_bucket(c, hash);
    for (i = 0; i < CS_BUCKET; i++) {
        cs_slot_t *s = &b[i];
        apr_uint32_t s1, s2, used;
        unsigned char h[16];
        cs_entry_t copy;
        cs_local_t lcopy;

        s1 = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
        if (s1 & 1) {
            continue;           /* being written: treat as a miss */
        }
        used = s->used;
        memcpy(h, s->hash, sizeof(h));
        memcpy(&copy, &s->e, sizeof(copy));
        memcpy(&lcopy, &s->local, sizeof(lcopy));
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        s2 = __atomic_load_n(&s->seq, __ATOMIC_RELAXED);
        if (s1 != s2 || !used || memcmp(h, hash, sizeof(h)) != 0) {
            continue;
        }
        *e = copy;
        if (local) {
            *local = lcopy;
        }
        __atomic_fetch_add(&c->hdr->hits, 1, __ATOMIC_RELAXED);
        return 1;
    }
    __atomic_fetch_add(&c->hdr->misses, 1, __ATOMIC_RELAXED);
    return 0;
}

apr_uint64_t cs_cache_epoch(cs_cache_t *c)
{
    return c ? __atomic_load_n(&c->hdr->epoch, __ATOMIC_SEQ_CST) : 0;
}

static int cs_slot_trylock(cs_slot_t *s, apr_uint32_t *seq)
{
    apr_uint32_t cur = __atomic_load_n(&s->seq, __ATOMIC_RELAXED);

    if (cur & 1) {
        return 0;
    }
    if (!__atomic_compare_exchange_n(&s->seq, &cur, cur + 1, 0,
                                     __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
        return 0;
    }
    *seq = cur + 1;
    return 1;
}

static void cs_slot_lock(cs_slot_t *s, apr_uint32_t *seq)
{
    while (!cs_slot_trylock(s, seq)) {
        sched_yield();
    }
}

static void cs_slot_unlock(cs_slot_t *s, apr_uint32_t seq)
{
    __atomic_store_n(&s->seq, seq + 1, __ATOMIC_RELEASE);
}

void cs_cache_put(cs_cache_t *c, const char *key, const cs_entry_t *e,
                  apr_uint64_t epoch)
{
    unsigned char hash[16];
    cs_slot_t *b, *s = NULL;
    apr_uint32_t seq;
    int i;

    if (!c) {
        return;
    }
    cs_hash(c, key, hash);
    b = cs_bucket(c, hash);
    /* The key's own slot, else a free one, else a victim. */
    for (i = 0; i < CS_BUCKET && !s; i++) {
        if (b[i].used && memcmp(b[i].hash, hash, sizeof(hash)) == 0) {
            s = &b[i];
        }
    }
    for (i = 0; i < CS_BUCKET && !s; i++) {
        if (!b[i].used) {
            s = &b[i];
        }
    }
    if (!s) {
        s = &b[hash[15] % CS_BUCKET];
    }
    if (!cs_slot_trylock(s, &seq)) {
        return;                 /* contended: it is only a cache */
    }
    if (__atomic_load_n(&c->hdr->epoch, __ATOMIC_SEQ_CST) != epoch
        || (s->used && memcmp(s->hash, hash, sizeof(hash)) == 0
            && s->e.version > e->version)) {
        cs_slot_unlock(s, seq);
        return;
    }
    memcpy(s->hash, hash, sizeof(hash));
    s->e = *e;
    memset(&s->local, 0, sizeof(s->local));
    s->used = 1;
    cs_slot_unlock(s, seq);
}

void cs_cache_note_local(cs_cache_t *c, const char *key, const cs_entry_t *e,
                         const cs_local_t *local)
{
    unsigned char hash[16];
    cs_slot_t *b;
    apr_uint32_t seq;
    int i;

    if (!c || !cs_cache_lease_valid(c)) {
        return;
    }
    cs_hash(c, key, hash);
    b = cs_bucket(c, hash);
    for (i = 0; i < CS_BUCKET; i++) {
        cs_slot_t *s = &b[i];
        if (!s->used || memcmp(s->hash, hash, sizeof(hash)) != 0) {
            continue;
        }
        if (!cs_slot_trylock(s, &seq)) {
            return;             /* contended: the next hit notes it */
        }
        /* Only next to the entry it was verified against. */
        if (s->used && memcmp(s->hash, hash, sizeof(hash)) == 0
            && s->e.version == e->version && !s->e.deleted
            && strcmp(s->e.sha256, e->sha256) == 0) {
            s->local = *local;
        }
        cs_slot_unlock(s, seq);
        return;
    }
}

void cs_cache_invalidate(cs_cache_t *c, const char *key)
{
    unsigned char hash[16];
    cs_slot_t *b;
    apr_uint32_t seq;
    int i;

    if (!c) {
        return;
    }
    /* First the epoch: any reader that read the registry before now will
     * not insert what it read. */
    __atomic_fetch_add(&c->hdr->epoch, 1, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&c->hdr->invalidations, 1, __ATOMIC_RELAXED);
    cs_hash(c, key, hash);
    b = cs_bucket(c, hash);
    for (i = 0; i < CS_BUCKET; i++) {
        /* Wait for an insert in progress, then drop the key's slot. */
        cs_slot_lock(&b[i], &seq);
        if (b[i].used && memcmp(b[i].hash, hash, sizeof(hash)) == 0) {
            b[i].used = 0;
        }
        cs_slot_unlock(&b[i], seq);
    }
}

void cs_cache_stats(cs_cache_t *c, apr_uint64_t *hits, apr_uint64_t *misses,
                    apr_uint64_t *invalidations)
{
    *hits = c ? __atomic_load_n(&c->hdr->hits, __ATOMIC_RELAXED) : 0;
    *misses = c ? __atomic_load_n(&c->hdr->misses, __ATOMIC_RELAXED) : 0;
    *invalidations = c ? __atomic_load_n(&c->hdr->invalidations,
                                         __ATOMIC_RELAXED) : 0;
}
