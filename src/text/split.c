/* The 510-token limit: a segment's ids are split, never truncated. */
#include "text/text_internal.h"

/* Vocabulary ids the split looks at (kokoro-config.json). */
enum {
    ID_SPACE = 16,
    ID_PRIMARY = 156,   /* ˈ */
    ID_SECONDARY = 157, /* ˌ */
    ID_LONG = 158,      /* ː */
    ID_ASPIRATED = 162, /* ʰ */
    ID_PALATAL = 164,   /* ʲ */
    ID_NASAL = 17,      /* combining tilde */
};

static int is_clause_end(int32_t id) {
    return (id >= 1 && id <= 6) || id == 9 || id == 10; /* ; : , . ! ? — … */
}

/* A cut before ids[k] keeps a phoneme whole: ids[k] does not modify the one before it, and the
 * one before it is not a stress mark waiting for its vowel. */
static int phoneme_boundary(const int32_t *ids, size_t k) {
    int32_t id = ids[k], before = ids[k - 1];
    return id != ID_LONG && id != ID_ASPIRATED && id != ID_PALATAL && id != ID_NASAL &&
           before != ID_PRIMARY && before != ID_SECONDARY;
}

size_t koe_text_split_ids(const int32_t *ids, size_t n, size_t max, size_t *ends) {
    size_t count = 0, pos = 0;
    if (!n) return 0;
    if (max < 2) max = 2;
    while (n - pos > max) {
        size_t limit = pos + max, cut = 0;
        /* 1. After a clause mark and its space, when that keeps the chunk at least half full. */
        for (size_t j = limit - 1; j > pos + max / 2 && !cut; j--)
            if (ids[j] == ID_SPACE && is_clause_end(ids[j - 1])) cut = j + 1;
        /* 2. After the last space (a word boundary). */
        for (size_t j = limit; j > pos + 1 && !cut; j--)
            if (ids[j - 1] == ID_SPACE) cut = j;
        /* 3. A single giant word: the last phoneme boundary. */
        for (size_t j = limit; j > pos + 1 && !cut; j--)
            if (phoneme_boundary(ids, j)) cut = j;
        if (!cut) cut = limit;
        ends[count++] = cut;
        pos = cut;
    }
    ends[count++] = n;
    return count;
}
