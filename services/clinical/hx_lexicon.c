/* hx_lexicon — the phrase matcher behind triage (see hx_triage_internal.h).
 *
 * Phrases and referral text go through the same tokenizer (hx_text), so a phrase matches
 * a sequence of normalised words, never a raw substring: "bladder" does not match inside
 * "gallbladder", "CES" matches "ces" and "C.E.S." alike. A phrase word ending in "*" matches
 * any word it begins ("numb*": numb, numbness); "..." stands for 0 to 3 words of the same
 * sentence. A text word also matches a phrase word it is the plural of (+s, +es), and a
 * text word that is in no phrase at all, 7+ letters, matches a concept or fact word it is a
 * near misspelling of (hx_text_near: one edit, two from 11 letters; same first letter);
 * each such reading is reported with the evidence. A phrase word written "=CES" matches only
 * a text word in capitals: French "ces" (these) is not cauda equina syndrome. */
#include "hx_triage_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GAP_WORD "qqgapqq"
#define PREFIX_MARK "qqprefixqq"
#define CAPS_MARK "qqcapsqq"
#define MAX_GAP 3
#define FUZZY_MIN 7

static int vocab_id(hx_rules_t *r, const char *w, bool prefix, bool fuzzy_target)
{
    char key[HX_WORD_MAX + 2];
    snprintf(key, sizeof key, "%s%s", w, prefix ? "*" : "");
    vword_t *v = NULL;
    HASH_FIND_STR(r->vocab_hash, key, v);
    if (v) {
        v->fuzzy_target |= fuzzy_target && !prefix && strlen(w) >= FUZZY_MIN;
        return (int)v->id;
    }
    if (r->n_vocab >= GAP_ID - 1)
        return -1;
    if (r->n_vocab == r->cap_vocab) {
        size_t cap = r->cap_vocab ? r->cap_vocab * 2 : 256;
        vword_t **grown = realloc(r->vocab, cap * sizeof *grown);
        if (!grown)
            return -1;
        r->vocab = grown;
        r->cap_vocab = cap;
    }
    v = calloc(1, sizeof *v);
    if (!v || !(v->w = strdup(key))) {
        free(v);
        return -1;
    }
    if (prefix)
        v->w[strlen(v->w) - 1] = '\0';     /* stored without the star; the key had it */
    v->prefix = prefix;
    v->fuzzy_target = fuzzy_target && !prefix && strlen(w) >= FUZZY_MIN;
    /* the hash key must stay as it was hashed: keep "numb*" for prefixes in a second copy */
    char *hkey = prefix ? strdup(key) : v->w;
    if (!hkey) {
        free(v->w);
        free(v);
        return -1;
    }
    HASH_ADD_KEYPTR(hh, r->vocab_hash, hkey, strlen(hkey), v);
    v->id = r->n_vocab;
    r->vocab[r->n_vocab] = v;
    return (int)r->n_vocab++;
}

/* The phrase with its marks replaced by words the tokenizer keeps. */
static char *mark_phrase(const char *phrase)
{
    size_t n = strlen(phrase);
    char *out = malloc(n * 12 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (!strncmp(phrase + i, "...", 3)) {
            o += (size_t)sprintf(out + o, " %s ", GAP_WORD);
            i += 2;
        } else if (phrase[i] == '*') {
            o += (size_t)sprintf(out + o, "%s", PREFIX_MARK);
        } else if (phrase[i] == '=' && (i == 0 || phrase[i - 1] == ' ')) {
            o += (size_t)sprintf(out + o, "%s", CAPS_MARK);
        } else {
            out[o++] = phrase[i];
        }
    }
    out[o] = '\0';
    return out;
}

int hx_lex_add(hx_rules_t *r, const char *phrase, group_t group, int target)
{
    char *marked = mark_phrase(phrase);
    hx_toks_t toks = {0};
    int rc = -1;
    if (!marked || hx_text_tokenize(&toks, marked, 0) != 0)
        goto out;
    uint16_t *ids = calloc(toks.n + 1, sizeof *ids);
    if (!ids)
        goto out;
    size_t n = 0;
    bool fuzzy_target = group == G_CONCEPT || group == G_FACT;
    for (size_t i = 0; i < toks.n; i++) {
        char *w = toks.t[i].w;
        if (toks.t[i].kind == HX_TOK_COMMA)
            continue;
        if (!strcmp(w, GAP_WORD)) {
            if (n > 0)
                ids[n++] = GAP_ID;
            continue;
        }
        size_t wl = strlen(w), ml = strlen(PREFIX_MARK), cl = strlen(CAPS_MARK);
        bool prefix = wl > ml && !strcmp(w + wl - ml, PREFIX_MARK);
        if (prefix)
            w[wl - ml] = '\0';
        bool caps = !strncmp(w, CAPS_MARK, cl) && w[cl] && strlen(w) - cl < HX_WORD_MAX - 2;
        if (caps) {             /* "ces^": matches only a word written in capitals */
            char marked_word[HX_WORD_MAX];
            snprintf(marked_word, sizeof marked_word, "%s^", w + cl);
            memcpy(w, marked_word, sizeof marked_word);
        }
        int id = vocab_id(r, w, prefix, fuzzy_target && !caps);
        if (id < 0) {
            free(ids);
            goto out;
        }
        ids[n++] = (uint16_t)id;
    }
    while (n > 0 && ids[n - 1] == GAP_ID)
        n--;
    if (n == 0) {
        free(ids);
        rc = -2;
        goto out;
    }
    if (r->n_phrases == r->cap_phrases) {
        size_t cap = r->cap_phrases ? r->cap_phrases * 2 : 512;
        phrase_t *grown = realloc(r->phrases, cap * sizeof *grown);
        if (!grown) {
            free(ids);
            goto out;
        }
        r->phrases = grown;
        r->cap_phrases = cap;
    }
    phrase_t *p = &r->phrases[r->n_phrases];
    p->ids = ids;
    p->n = n;
    p->group = group;
    p->target = target;
    p->text = strdup(phrase);
    if (!p->text) {
        free(ids);
        goto out;
    }
    r->n_phrases++;
    rc = 0;
out:
    free(marked);
    hx_toks_free(&toks);
    return rc;
}

int hx_lex_finish(hx_rules_t *r)
{
    r->first = calloc(r->n_vocab + 1, sizeof *r->first);
    r->prefix_ids = calloc(r->n_vocab + 1, sizeof *r->prefix_ids);
    if (!r->first || !r->prefix_ids)
        return -1;
    size_t *count = calloc(r->n_vocab + 1, sizeof *count);
    if (!count)
        return -1;
    for (size_t p = 0; p < r->n_phrases; p++)
        count[r->phrases[p].ids[0]]++;
    int rc = 0;
    for (size_t v = 0; v < r->n_vocab && rc == 0; v++) {
        if (r->vocab[v]->prefix)
            r->prefix_ids[r->n_prefix++] = v;
        if (!count[v])
            continue;
        r->first[v] = calloc(count[v] + 1, sizeof **r->first);
        rc = r->first[v] ? 0 : -1;
    }
    for (size_t p = 0; p < r->n_phrases && rc == 0; p++) {
        size_t *list = r->first[r->phrases[p].ids[0]];
        list[1 + list[0]++] = p;
    }
    free(count);
    return rc;
}

void hx_lex_free(hx_rules_t *r)
{
    vword_t *it, *tmp;
    HASH_ITER(hh, r->vocab_hash, it, tmp) {
        HASH_DEL(r->vocab_hash, it);
        if (it->prefix)
            free((void *)it->hh.key);
    }
    for (size_t i = 0; i < r->n_vocab; i++) {
        free(r->vocab[i]->w);
        free(r->vocab[i]);
        if (r->first)
            free(r->first[i]);
    }
    free(r->vocab);
    free(r->first);
    free(r->prefix_ids);
    for (size_t p = 0; p < r->n_phrases; p++) {
        free(r->phrases[p].ids);
        free(r->phrases[p].text);
    }
    free(r->phrases);
}

/* ---- matching ------------------------------------------------------------------------ */

typedef struct {
    uint16_t id;
    bool fuzzy;
} cand_t;

typedef struct {
    cand_t *c;
    size_t n;
} cands_t;

static bool add_cand(cands_t *cs, uint16_t id, bool fuzzy)
{
    for (size_t i = 0; i < cs->n; i++)
        if (cs->c[i].id == id)
            return true;
    cand_t *grown = realloc(cs->c, (cs->n + 1) * sizeof *grown);
    if (!grown)
        return false;
    cs->c = grown;
    cs->c[cs->n++] = (cand_t){id, fuzzy};
    return true;
}

static int find_word(const hx_rules_t *r, const char *w)
{
    vword_t *v = NULL;
    HASH_FIND_STR(r->vocab_hash, w, v);
    return v && !v->prefix ? (int)v->id : -1;
}

static bool not_misspelling(const hx_rules_t *r, const char *w)
{
    for (size_t i = 0; i < r->n_not_misspellings; i++)
        if (!strcmp(r->not_misspellings[i], w))
            return true;
    return false;
}

/* The vocabulary words token t matches. */
static bool token_cands(const hx_rules_t *r, const hx_tok_t *t, cands_t *cs)
{
    if (t->kind != HX_TOK_WORD && t->kind != HX_TOK_NUM && t->kind != HX_TOK_QUERY)
        return true;
    const char *w = t->w;
    size_t len = strlen(w);
    bool known = false;
    int id = find_word(r, w);
    if (id >= 0) {
        known = true;
        if (!add_cand(cs, (uint16_t)id, false))
            return false;
    }
    char caps[HX_WORD_MAX + 1];
    snprintf(caps, sizeof caps, "%s^", w);
    if (t->upper && (id = find_word(r, caps)) >= 0) {
        known = true;
        if (!add_cand(cs, (uint16_t)id, false))
            return false;
    }
    char stem[HX_WORD_MAX];
    for (size_t cut = 1; cut <= 2 && len > cut + 2; cut++) {
        if (w[len - 1] != 's' || (cut == 2 && w[len - 2] != 'e'))
            continue;
        memcpy(stem, w, len - cut);
        stem[len - cut] = '\0';
        if ((id = find_word(r, stem)) >= 0) {
            known = true;
            if (!add_cand(cs, (uint16_t)id, false))
                return false;
        }
    }
    for (size_t k = 0; k < r->n_prefix; k++) {
        const vword_t *v = r->vocab[r->prefix_ids[k]];
        if (!strncmp(w, v->w, strlen(v->w))) {
            known = true;
            if (!add_cand(cs, (uint16_t)r->prefix_ids[k], false))
                return false;
        }
    }
    if (known || len < FUZZY_MIN || t->kind != HX_TOK_WORD || not_misspelling(r, w))
        return true;
    for (size_t v = 0; v < r->n_vocab; v++)
        if (r->vocab[v]->fuzzy_target && hx_text_near(w, r->vocab[v]->w) && !add_cand(cs, (uint16_t)v, true))
            return false;
    return true;
}

typedef struct {
    const hx_rules_t *r;
    const hx_toks_t *toks;
    const cands_t *cands;
    size_t fuzzy_at;            /* token of the first misspelling read, or SIZE_MAX */
    uint16_t fuzzy_id;
} mctx_t;

static int token_has(const mctx_t *m, size_t i, uint16_t id)
{
    for (size_t k = 0; k < m->cands[i].n; k++)
        if (m->cands[i].c[k].id == id)
            return m->cands[i].c[k].fuzzy ? 2 : 1;
    return 0;
}

/* Matches phrase elements [el, n) from token i; returns the end token, or 0. */
static size_t match_from(mctx_t *m, const phrase_t *p, size_t el, size_t i, uint32_t sentence)
{
    if (el == p->n)
        return i;
    if (p->ids[el] == GAP_ID) {
        for (size_t skip = 0; skip <= MAX_GAP; skip++) {
            if (i + skip > m->toks->n || (skip && m->toks->t[i + skip - 1].sentence != sentence))
                break;
            size_t end = match_from(m, p, el + 1, i + skip, sentence);
            if (end)
                return end;
        }
        return 0;
    }
    if (i >= m->toks->n || m->toks->t[i].sentence != sentence)
        return 0;
    if (el > 0 && m->toks->t[i].kind == HX_TOK_COMMA && !strcmp(m->toks->t[i].w, ","))
        return match_from(m, p, el, i + 1, sentence);    /* "hot, swollen" is "hot swollen" */
    int how = token_has(m, i, p->ids[el]);
    if (!how)
        return 0;
    size_t end = match_from(m, p, el + 1, i + 1, sentence);
    if (end && how == 2 && m->fuzzy_at == SIZE_MAX) {
        m->fuzzy_at = i;
        m->fuzzy_id = p->ids[el];
    }
    return end;
}

static bool push_match(matches_t *out, const match_t *mt)
{
    if (out->n == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 64;
        match_t *grown = realloc(out->m, cap * sizeof *grown);
        if (!grown)
            return false;
        out->m = grown;
        out->cap = cap;
    }
    out->m[out->n++] = *mt;
    return true;
}

/* Every match of every phrase, overlapping or not. */
static bool all_matches(const hx_rules_t *r, const hx_toks_t *toks, const cands_t *cands, matches_t *all)
{
    mctx_t m = {.r = r, .toks = toks, .cands = cands};
    for (size_t i = 0; i < toks->n; i++) {
        for (size_t k = 0; k < cands[i].n; k++) {
            const size_t *list = r->first[cands[i].c[k].id];
            for (size_t j = 0; list && j < list[0]; j++) {
                const phrase_t *p = &r->phrases[list[1 + j]];
                m.fuzzy_at = SIZE_MAX;
                size_t end = match_from(&m, p, 0, i, toks->t[i].sentence);
                if (!end)
                    continue;
                match_t mt = {.s = i, .e = end, .group = p->group, .target = p->target, .phrase = list[1 + j]};
                if (m.fuzzy_at != SIZE_MAX) {
                    snprintf(mt.fuzzy_from, sizeof mt.fuzzy_from, "%s", toks->t[m.fuzzy_at].w);
                    snprintf(mt.fuzzy_to, sizeof mt.fuzzy_to, "%s", r->vocab[m.fuzzy_id]->w);
                }
                if (!push_match(all, &mt))
                    return false;
            }
        }
    }
    return true;
}

static int by_length(const void *a, const void *b)
{
    const match_t *x = a, *y = b;
    size_t lx = x->e - x->s, ly = y->e - y->s;
    if (lx != ly)
        return lx > ly ? -1 : 1;
    if (x->s != y->s)
        return x->s < y->s ? -1 : 1;
    return x->phrase < y->phrase ? -1 : x->phrase > y->phrase;
}

static int by_start(const void *a, const void *b)
{
    const match_t *x = a, *y = b;
    if (x->s != y->s)
        return x->s < y->s ? -1 : 1;
    return x->group < y->group ? -1 : x->group > y->group;
}

static bool overlaps(const match_t *a, const match_t *b)
{
    return a->s < b->e && b->s < a->e;
}

/* Keeps, per group, the longest of overlapping matches (explanations are all kept, and a
 * trigger phrase listed as two kinds, "nil" before and after, is kept as both); drops
 * pseudo-negations overlapping a concept and triggers inside a concept or fact. */
static bool resolve(matches_t *all, matches_t *out)
{
    if (all->n == 0)
        return true;
    qsort(all->m, all->n, sizeof *all->m, by_length);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < all->n; i++) {
            const match_t *c = &all->m[i];
            bool trigger = c->group == G_TRIGGER;
            if ((pass == 0) == trigger)
                continue;       /* concepts and facts first, then what depends on them */
            bool keep = true;
            for (size_t k = 0; k < out->n && keep; k++) {
                const match_t *o = &out->m[k];
                if (!overlaps(c, o))
                    continue;
                bool same_span = o->s == c->s && o->e == c->e && o->target != c->target;
                if (o->group == c->group && c->group != G_EXPLAIN && !(trigger && same_span))
                    keep = false;
                else if (trigger && (o->group == G_CONCEPT || o->group == G_FACT) &&
                         (c->target == TR_PSEUDO || (c->s >= o->s && c->e <= o->e)))
                    keep = false;
            }
            if (keep && !push_match(out, c))
                return false;
        }
    }
    if (out->n)
        qsort(out->m, out->n, sizeof *out->m, by_start);
    return true;
}

int hx_lex_match(const hx_rules_t *r, const hx_toks_t *toks, matches_t *out)
{
    memset(out, 0, sizeof *out);
    cands_t *cands = calloc(toks->n + 1, sizeof *cands);
    matches_t all = {0};
    bool ok = cands != NULL;
    for (size_t i = 0; ok && i < toks->n; i++)
        ok = token_cands(r, &toks->t[i], &cands[i]);
    ok = ok && all_matches(r, toks, cands, &all) && resolve(&all, out);
    for (size_t i = 0; cands && i < toks->n; i++)
        free(cands[i].c);
    free(cands);
    hx_matches_free(&all);
    if (!ok) {
        hx_matches_free(out);
        out->oom = true;
        return -1;
    }
    return 0;
}

void hx_matches_free(matches_t *m)
{
    if (!m)
        return;
    free(m->m);
    m->m = NULL;
    m->n = m->cap = 0;
}
