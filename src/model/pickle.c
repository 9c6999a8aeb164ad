/* PyTorch `.pth` checkpoints: a zip whose `<top>/data.pkl` is a pickle (protocol 2) describing
 * dicts of tensors, and whose `<top>/data/<key>` entries hold the raw storages.
 *
 * The pickle is read as data, never run: a small stack machine that knows exactly the opcodes
 * torch.save emits for dicts of tensors, and only four kinds of GLOBAL (OrderedDict, the tensor
 * rebuild function, and the storage types), each turned into a plain value. Any other opcode or
 * global is an error that names it. */
#include "model/weights_internal.h"
#include "model/zip.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    PK_MARK,
    PK_NONE,
    PK_BOOL,
    PK_INT,
    PK_FLOAT,
    PK_STR,
    PK_TUPLE,
    PK_LIST,
    PK_DICT,
    PK_GLOBAL,
    PK_STORAGE,
    PK_TENSOR
} pk_kind;

typedef enum { G_ODICT, G_REBUILD, G_FLOAT, G_LONG, G_HALF, G_BF16 } pk_global;

typedef struct pk_value pk_value;
struct pk_value {
    pk_kind kind;
    int64_t i; /* int, bool, global id; storage: element count; tensor: offset */
    const char *s;
    size_t slen;
    pk_value **items; /* tuple, list; dict: k0, v0, k1, v1, ... */
    size_t n, cap;
    pk_value *storage; /* tensor */
    int storage_type;  /* storage: a pk_global storage type */
    int ndim;
    int64_t shape[4], stride[4];
    pk_value *next_alloc;
};

typedef struct machine {
    const unsigned char *start, *p, *end;
    pk_value **stack;
    size_t sp, stack_cap;
    pk_value **memo;
    size_t memo_cap;
    pk_value *allocs;
    koe_error *err;
} machine;

#define MAX_STACK (1u << 16)
#define MAX_MEMO  (1u << 20)
#define MAX_ITEMS (1u << 22)

static pk_value *val(machine *m, pk_kind k) {
    pk_value *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    v->kind = k;
    v->next_alloc = m->allocs;
    m->allocs = v;
    return v;
}

static void free_all(machine *m) {
    for (pk_value *v = m->allocs, *nx; v; v = nx) {
        nx = v->next_alloc;
        free(v->items);
        free(v);
    }
    free(m->stack);
    free(m->memo);
}

static int push(machine *m, pk_value *v) {
    if (!v) return koe_error_set(m->err, KOE_ERR_NOMEM, "out of memory reading the pickle");
    if (m->sp == m->stack_cap) {
        if (m->stack_cap >= MAX_STACK)
            return koe_error_set(m->err, KOE_ERR_FORMAT, "pickle stack deeper than %u", MAX_STACK);
        size_t cap = m->stack_cap ? m->stack_cap * 2 : 64;
        pk_value **s = realloc(m->stack, cap * sizeof *s);
        if (!s) return koe_error_set(m->err, KOE_ERR_NOMEM, "out of memory reading the pickle");
        m->stack = s;
        m->stack_cap = cap;
    }
    m->stack[m->sp++] = v;
    return 0;
}

static pk_value *pop(machine *m) {
    if (!m->sp || m->stack[m->sp - 1]->kind == PK_MARK) return NULL;
    return m->stack[--m->sp];
}

static int add_item(machine *m, pk_value *c, pk_value *x) {
    if (c->n == c->cap) {
        if (c->cap >= MAX_ITEMS)
            return koe_error_set(m->err, KOE_ERR_FORMAT, "pickle container too large");
        size_t cap = c->cap ? c->cap * 2 : 8;
        pk_value **it = realloc(c->items, cap * sizeof *it);
        if (!it) return koe_error_set(m->err, KOE_ERR_NOMEM, "out of memory reading the pickle");
        c->items = it;
        c->cap = cap;
    }
    c->items[c->n++] = x;
    return 0;
}

/* Index of the topmost MARK, or -1. */
static long find_mark(const machine *m) {
    for (size_t i = m->sp; i-- > 0;)
        if (m->stack[i]->kind == PK_MARK) return (long)i;
    return -1;
}

static int need(machine *m, size_t n, const char *what) {
    if ((size_t)(m->end - m->p) < n)
        return koe_error_set(m->err, KOE_ERR_FORMAT, "pickle truncated in %s", what);
    return 0;
}

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int str_is(const pk_value *v, const char *s) {
    return v && v->kind == PK_STR && v->slen == strlen(s) && !memcmp(v->s, s, v->slen);
}

static int global(machine *m) {
    const unsigned char *nl1 = memchr(m->p, '\n', (size_t)(m->end - m->p));
    if (!nl1) return koe_error_set(m->err, KOE_ERR_FORMAT, "pickle GLOBAL truncated");
    const unsigned char *nl2 = memchr(nl1 + 1, '\n', (size_t)(m->end - nl1 - 1));
    if (!nl2) return koe_error_set(m->err, KOE_ERR_FORMAT, "pickle GLOBAL truncated");
    static const struct {
        const char *mod, *name;
        pk_global id;
    } allowed[] = {
        {"collections", "OrderedDict", G_ODICT}, {"torch._utils", "_rebuild_tensor_v2", G_REBUILD},
        {"torch", "FloatStorage", G_FLOAT},      {"torch", "LongStorage", G_LONG},
        {"torch", "HalfStorage", G_HALF},        {"torch", "BFloat16Storage", G_BF16}};
    size_t ml = (size_t)(nl1 - m->p), nl = (size_t)(nl2 - nl1 - 1);
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
        if (ml == strlen(allowed[i].mod) && !memcmp(m->p, allowed[i].mod, ml) &&
            nl == strlen(allowed[i].name) && !memcmp(nl1 + 1, allowed[i].name, nl)) {
            pk_value *g = val(m, PK_GLOBAL);
            if (g) g->i = allowed[i].id;
            m->p = nl2 + 1;
            return push(m, g);
        }
    return koe_error_set(m->err, KOE_ERR_FORMAT,
                         "pickle names '%.*s.%.*s', which a checkpoint of tensors never needs "
                         "(refused: nothing in a pickle is ever executed)",
                         (int)(ml > 80 ? 80 : ml), (const char *)m->p, (int)(nl > 80 ? 80 : nl),
                         (const char *)nl1 + 1);
}

static int int_tuple(machine *m, const pk_value *t, int64_t *out, int *n, const char *what) {
    if (!t || t->kind != PK_TUPLE || t->n > 4)
        return koe_error_set(m->err, KOE_ERR_FORMAT, "tensor %s is not a tuple of at most 4 ints",
                             what);
    for (size_t i = 0; i < t->n; i++) {
        if (t->items[i]->kind != PK_INT || t->items[i]->i < 0)
            return koe_error_set(m->err, KOE_ERR_FORMAT, "tensor %s holds a non-integer", what);
        out[i] = t->items[i]->i;
    }
    *n = (int)t->n;
    return 0;
}

static int reduce(machine *m) {
    pk_value *args = pop(m), *fn = pop(m);
    if (!args || !fn || args->kind != PK_TUPLE || fn->kind != PK_GLOBAL)
        return koe_error_set(m->err, KOE_ERR_FORMAT, "pickle REDUCE without a callable and args");
    if (fn->i == G_ODICT) {
        if (args->n) return koe_error_set(m->err, KOE_ERR_FORMAT, "OrderedDict with arguments");
        return push(m, val(m, PK_DICT));
    }
    if (fn->i != G_REBUILD) {
        static const char *const names[] = {
            "collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
            "torch.FloatStorage",      "torch.LongStorage",
            "torch.HalfStorage",       "torch.BFloat16Storage"};
        return koe_error_set(m->err, KOE_ERR_FORMAT,
                             "pickle REDUCE calls %s, which is not a constructor a checkpoint uses",
                             names[fn->i]);
    }
    if (args->n < 4)
        return koe_error_set(m->err, KOE_ERR_FORMAT, "_rebuild_tensor_v2 with %zu arguments",
                             args->n);
    pk_value *t = val(m, PK_TENSOR);
    if (!t) return koe_error_set(m->err, KOE_ERR_NOMEM, "out of memory reading the pickle");
    if (args->items[0]->kind != PK_STORAGE || args->items[1]->kind != PK_INT ||
        args->items[1]->i < 0)
        return koe_error_set(m->err, KOE_ERR_FORMAT, "tensor without a storage and offset");
    t->storage = args->items[0];
    t->i = args->items[1]->i;
    int nst = 0;
    if (int_tuple(m, args->items[2], t->shape, &t->ndim, "size") ||
        int_tuple(m, args->items[3], t->stride, &nst, "stride"))
        return m->err ? m->err->code : KOE_ERR_FORMAT;
    if (nst != t->ndim)
        return koe_error_set(m->err, KOE_ERR_FORMAT, "tensor size and stride differ in length");
    return push(m, t);
}

static int persid(machine *m) {
    pk_value *pid = pop(m);
    if (!pid || pid->kind != PK_TUPLE || pid->n != 5 || !str_is(pid->items[0], "storage") ||
        pid->items[1]->kind != PK_GLOBAL || pid->items[1]->i < G_FLOAT ||
        pid->items[2]->kind != PK_STR || pid->items[4]->kind != PK_INT || pid->items[4]->i < 0)
        return koe_error_set(m->err, KOE_ERR_FORMAT, "pickle persistent id is not a storage");
    pk_value *s = val(m, PK_STORAGE);
    if (!s) return koe_error_set(m->err, KOE_ERR_NOMEM, "out of memory reading the pickle");
    s->storage_type = (int)pid->items[1]->i;
    s->s = pid->items[2]->s;
    s->slen = pid->items[2]->slen;
    s->i = pid->items[4]->i;
    return push(m, s);
}

/* Runs the pickle; *result is the value STOP returns. */
static int run(machine *m, pk_value **result) {
    for (;;) {
        if (m->p >= m->end) return koe_error_set(m->err, KOE_ERR_FORMAT, "pickle has no STOP");
        unsigned char op = *m->p++;
        int rc = 0;
        switch (op) {
        case 0x80: /* PROTO */
            if ((rc = need(m, 1, "PROTO"))) return rc;
            if (*m->p > 5)
                return koe_error_set(m->err, KOE_ERR_FORMAT, "pickle protocol %d", *m->p);
            m->p++;
            break;
        case '}':
            rc = push(m, val(m, PK_DICT));
            break;
        case ']':
            rc = push(m, val(m, PK_LIST));
            break;
        case ')':
            rc = push(m, val(m, PK_TUPLE));
            break;
        case '(':
            rc = push(m, val(m, PK_MARK));
            break;
        case 'N':
            rc = push(m, val(m, PK_NONE));
            break;
        case 0x88:   /* NEWTRUE */
        case 0x89: { /* NEWFALSE */
            pk_value *b = val(m, PK_BOOL);
            if (b) b->i = op == 0x88;
            rc = push(m, b);
            break;
        }
        case 'K':
        case 'M':
        case 'J': { /* BININT1, BININT2, BININT */
            size_t n = op == 'K' ? 1 : op == 'M' ? 2 : 4;
            if ((rc = need(m, n, "BININT"))) return rc;
            pk_value *v = val(m, PK_INT);
            if (v) {
                uint32_t u = 0;
                for (size_t k = 0; k < n; k++) u |= (uint32_t)m->p[k] << (8 * k);
                v->i = op == 'J' ? (int64_t)(int32_t)u : (int64_t)u;
            }
            m->p += n;
            rc = push(m, v);
            break;
        }
        case 0x8a: { /* LONG1: little-endian two's complement of n bytes */
            if ((rc = need(m, 1, "LONG1"))) return rc;
            size_t n = *m->p++;
            if (n > 8) return koe_error_set(m->err, KOE_ERR_FORMAT, "pickle integer too large");
            if ((rc = need(m, n, "LONG1"))) return rc;
            uint64_t u = 0;
            for (size_t k = 0; k < n; k++) u |= (uint64_t)m->p[k] << (8 * k);
            if (n && n < 8 && (m->p[n - 1] & 0x80)) u |= ~(uint64_t)0 << (8 * n);
            m->p += n;
            pk_value *v = val(m, PK_INT);
            if (v) v->i = (int64_t)u;
            rc = push(m, v);
            break;
        }
        case 'G': /* BINFLOAT: the value is never needed */
            if ((rc = need(m, 8, "BINFLOAT"))) return rc;
            m->p += 8;
            rc = push(m, val(m, PK_FLOAT));
            break;
        case 'X':
        case 0x8c: { /* BINUNICODE, SHORT_BINUNICODE */
            size_t hdr = op == 'X' ? 4 : 1;
            if ((rc = need(m, hdr, "string"))) return rc;
            size_t n = op == 'X' ? le32(m->p) : *m->p;
            m->p += hdr;
            if ((rc = need(m, n, "string"))) return rc;
            pk_value *v = val(m, PK_STR);
            if (v) v->s = (const char *)m->p, v->slen = n;
            m->p += n;
            rc = push(m, v);
            break;
        }
        case 'c':
            rc = global(m);
            break;
        case 't':
        case 0x85:
        case 0x86:
        case 0x87: { /* TUPLE, TUPLE1, TUPLE2, TUPLE3 */
            size_t from;
            if (op == 't') {
                long mk = find_mark(m);
                if (mk < 0)
                    return koe_error_set(m->err, KOE_ERR_FORMAT, "pickle TUPLE without MARK");
                from = (size_t)mk + 1;
            } else {
                size_t k = (size_t)(op - 0x84);
                if (m->sp < k)
                    return koe_error_set(m->err, KOE_ERR_FORMAT, "pickle stack underflow");
                from = m->sp - k;
                for (size_t i = from; i < m->sp; i++)
                    if (m->stack[i]->kind == PK_MARK)
                        return koe_error_set(m->err, KOE_ERR_FORMAT, "pickle tuple over a MARK");
            }
            pk_value *t = val(m, PK_TUPLE);
            if (!t) return koe_error_set(m->err, KOE_ERR_NOMEM, "out of memory");
            for (size_t i = from; i < m->sp; i++)
                if ((rc = add_item(m, t, m->stack[i]))) return rc;
            m->sp = op == 't' ? from - 1 : from;
            rc = push(m, t);
            break;
        }
        case 'R':
            rc = reduce(m);
            break;
        case 'Q':
            rc = persid(m);
            break;
        case 'q':
        case 'r': { /* BINPUT, LONG_BINPUT */
            size_t n = op == 'q' ? 1 : 4;
            if ((rc = need(m, n, "BINPUT"))) return rc;
            size_t idx = op == 'q' ? *m->p : le32(m->p);
            m->p += n;
            if (!m->sp || idx >= MAX_MEMO)
                return koe_error_set(m->err, KOE_ERR_FORMAT, "pickle memo index %zu", idx);
            if (idx >= m->memo_cap) {
                size_t cap = m->memo_cap ? m->memo_cap : 64;
                while (cap <= idx) cap *= 2;
                pk_value **mm = realloc(m->memo, cap * sizeof *mm);
                if (!mm) return koe_error_set(m->err, KOE_ERR_NOMEM, "out of memory");
                memset(mm + m->memo_cap, 0, (cap - m->memo_cap) * sizeof *mm);
                m->memo = mm;
                m->memo_cap = cap;
            }
            m->memo[idx] = m->stack[m->sp - 1];
            break;
        }
        case 'h':
        case 'j': { /* BINGET, LONG_BINGET */
            size_t n = op == 'h' ? 1 : 4;
            if ((rc = need(m, n, "BINGET"))) return rc;
            size_t idx = op == 'h' ? *m->p : le32(m->p);
            m->p += n;
            if (idx >= m->memo_cap || !m->memo[idx])
                return koe_error_set(m->err, KOE_ERR_FORMAT, "pickle reads unset memo %zu", idx);
            rc = push(m, m->memo[idx]);
            break;
        }
        case 'u':
        case 's': { /* SETITEMS, SETITEM */
            size_t from;
            if (op == 'u') {
                long mk = find_mark(m);
                if (mk < 1)
                    return koe_error_set(m->err, KOE_ERR_FORMAT, "pickle SETITEMS without MARK");
                from = (size_t)mk + 1;
            } else {
                if (m->sp < 3)
                    return koe_error_set(m->err, KOE_ERR_FORMAT, "pickle stack underflow");
                from = m->sp - 2;
            }
            size_t dict_at = op == 'u' ? from - 2 : from - 1;
            pk_value *d = m->stack[dict_at];
            if (d->kind != PK_DICT || (m->sp - from) % 2)
                return koe_error_set(m->err, KOE_ERR_FORMAT, "pickle SETITEMS on a non-dict");
            for (size_t i = from; i < m->sp; i++) {
                if (m->stack[i]->kind == PK_MARK)
                    return koe_error_set(m->err, KOE_ERR_FORMAT, "pickle SETITEM over a MARK");
                if ((rc = add_item(m, d, m->stack[i]))) return rc;
            }
            m->sp = dict_at + 1;
            break;
        }
        case 'e':
        case 'a': { /* APPENDS, APPEND */
            size_t from;
            if (op == 'e') {
                long mk = find_mark(m);
                if (mk < 1)
                    return koe_error_set(m->err, KOE_ERR_FORMAT, "pickle APPENDS without MARK");
                from = (size_t)mk + 1;
            } else {
                if (m->sp < 2)
                    return koe_error_set(m->err, KOE_ERR_FORMAT, "pickle stack underflow");
                from = m->sp - 1;
            }
            size_t list_at = op == 'e' ? from - 2 : from - 1;
            pk_value *l = m->stack[list_at];
            if (l->kind != PK_LIST)
                return koe_error_set(m->err, KOE_ERR_FORMAT, "pickle APPENDS on a non-list");
            for (size_t i = from; i < m->sp; i++)
                if ((rc = add_item(m, l, m->stack[i]))) return rc;
            m->sp = list_at + 1;
            break;
        }
        case 'b': { /* BUILD: state of an OrderedDict (its _metadata) or tensor; not needed */
            pk_value *state = pop(m);
            if (!state || !m->sp ||
                (m->stack[m->sp - 1]->kind != PK_DICT && m->stack[m->sp - 1]->kind != PK_TENSOR))
                return koe_error_set(m->err, KOE_ERR_FORMAT,
                                     "pickle BUILD on an unexpected object");
            break;
        }
        case '.': /* STOP */
            *result = pop(m);
            if (!*result)
                return koe_error_set(m->err, KOE_ERR_FORMAT, "pickle STOP on an empty stack");
            return 0;
        default:
            return koe_error_set(m->err, KOE_ERR_FORMAT,
                                 "pickle opcode 0x%02x at byte %ld is not one a checkpoint of "
                                 "tensors uses (refused)",
                                 op, (long)(m->p - 1 - m->start));
        }
        if (rc) return rc;
    }
}

static const koe_zip_entry *find_entry(const koe_zip_entry *e, size_t n, const char *prefix,
                                       size_t plen, const char *mid, const char *key, size_t klen) {
    size_t mlen = strlen(mid);
    for (size_t i = 0; i < n; i++)
        if (e[i].name_len == plen + mlen + klen && !memcmp(e[i].name, prefix, plen) &&
            !memcmp(e[i].name + plen, mid, mlen) && !memcmp(e[i].name + plen + mlen, key, klen))
            return &e[i];
    return NULL;
}

static int add_tensor(koe_weights *w, machine *m, const koe_zip_entry *ents, size_t nents,
                      const char *prefix, size_t plen, const char *name, const pk_value *t) {
    const pk_value *st = t->storage;
    koe_dtype dt = st->storage_type == G_FLOAT  ? KOE_DT_F32
                   : st->storage_type == G_LONG ? KOE_DT_I64
                   : st->storage_type == G_HALF ? KOE_DT_F16
                                                : KOE_DT_BF16;
    size_t es = koe_dtype_size(dt);
    const koe_zip_entry *e = find_entry(ents, nents, prefix, plen, "data/", st->s, st->slen);
    if (!e || !e->data)
        return koe_error_set(m->err, KOE_ERR_FORMAT, "tensor '%s': storage '%.*s' %s", name,
                             (int)(st->slen > 40 ? 40 : st->slen), st->s,
                             e ? "is compressed" : "is missing from the archive");
    if ((uint64_t)st->i > e->size / es)
        return koe_error_set(m->err, KOE_ERR_FORMAT,
                             "tensor '%s': storage holds %llu bytes, %lld elements announced", name,
                             (unsigned long long)e->size, (long long)st->i);
    /* The last element the view touches must lie inside the storage. Every product and sum is
     * overflow-checked: a crafted shape or stride must not wrap around into bounds. */
    uint64_t last = (uint64_t)t->i, count = 1, span;
    if ((uint64_t)t->i > (uint64_t)st->i)
        return koe_error_set(m->err, KOE_ERR_FORMAT, "tensor '%s': offset past its storage", name);
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] == 0) count = 0;
        if (t->shape[d] > 0 &&
            (__builtin_mul_overflow((uint64_t)(t->shape[d] - 1), (uint64_t)t->stride[d], &span) ||
             __builtin_add_overflow(last, span, &last)))
            return koe_error_set(m->err, KOE_ERR_FORMAT, "tensor '%s': absurd shape or stride",
                                 name);
    }
    if (count && last >= (uint64_t)st->i)
        return koe_error_set(m->err, KOE_ERR_FORMAT, "tensor '%s' reaches past its storage", name);
    int contiguous = 1;
    int64_t expect = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->stride[d] != expect) contiguous = 0;
        if (__builtin_mul_overflow(expect, t->shape[d], &expect)) contiguous = 0, expect = 0;
    }
    return koe_weights_add(w, name, dt, t->ndim, t->shape, contiguous ? NULL : t->stride,
                           e->data + (size_t)t->i * es, m->err);
}

/* "module.x.y" -> "x.y": the official file wraps every part in DataParallel. */
static void canonical(char *out, size_t cap, const char *part, size_t plen, const char *key,
                      size_t klen) {
    if (klen >= 7 && !memcmp(key, "module.", 7)) key += 7, klen -= 7;
    if (part)
        snprintf(out, cap, "%.*s.%.*s", (int)plen, part, (int)klen, key);
    else
        snprintf(out, cap, "%.*s", (int)klen, key);
}

int koe_pth_read(koe_weights *w, const unsigned char *buf, size_t len, koe_error *err) {
    koe_zip_entry *ents = NULL;
    size_t n = 0;
    int rc = koe_zip_list(buf, len, &ents, &n, err);
    if (rc) return rc;
    const koe_zip_entry *pkl = NULL;
    for (size_t i = 0; i < n; i++) {
        const koe_zip_entry *e = &ents[i];
        if (e->name_len >= 8 && !memcmp(e->name + e->name_len - 8, "data.pkl", 8) &&
            (e->name_len == 8 || e->name[e->name_len - 9] == '/')) {
            if (pkl) {
                free(ents);
                return koe_error_set(err, KOE_ERR_FORMAT, "archive holds two data.pkl");
            }
            pkl = e;
        }
    }
    if (!pkl || !pkl->data) {
        free(ents);
        return koe_error_set(err, KOE_ERR_FORMAT,
                             "not a PyTorch checkpoint: no stored data.pkl in the archive");
    }
    const char *prefix = pkl->name;
    size_t plen = pkl->name_len - 8;
    machine m = {.start = pkl->data, .p = pkl->data, .end = pkl->data + pkl->size, .err = err};
    pk_value *root = NULL;
    rc = run(&m, &root);
    if (!rc && (!root || root->kind != PK_DICT))
        rc = koe_error_set(err, KOE_ERR_FORMAT, "checkpoint pickle is not a dict");
    char name[512];
    for (size_t i = 0; !rc && i + 1 < root->n; i += 2) {
        pk_value *k = root->items[i], *v = root->items[i + 1];
        if (k->kind != PK_STR) {
            rc = koe_error_set(err, KOE_ERR_FORMAT, "checkpoint key is not a string");
        } else if (v->kind == PK_TENSOR) { /* a flat state dict */
            canonical(name, sizeof name, NULL, 0, k->s, k->slen);
            rc = add_tensor(w, &m, ents, n, prefix, plen, name, v);
        } else if (v->kind == PK_DICT) { /* {part: state dict} as Kokoro saves it */
            for (size_t j = 0; !rc && j + 1 < v->n; j += 2) {
                pk_value *kk = v->items[j], *vv = v->items[j + 1];
                if (kk->kind != PK_STR || vv->kind != PK_TENSOR) {
                    rc = koe_error_set(err, KOE_ERR_FORMAT, "part '%.*s' holds a non-tensor",
                                       (int)(k->slen > 40 ? 40 : k->slen), k->s);
                    break;
                }
                canonical(name, sizeof name, k->s, k->slen, kk->s, kk->slen);
                rc = add_tensor(w, &m, ents, n, prefix, plen, name, vv);
            }
        } else {
            rc = koe_error_set(err, KOE_ERR_FORMAT,
                               "checkpoint entry '%.*s' is neither a tensor nor a dict",
                               (int)(k->slen > 40 ? 40 : k->slen), k->s);
        }
    }
    free_all(&m);
    free(ents);
    return rc;
}
