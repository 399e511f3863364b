/* hx_text — word tokenizer and normaliser for referral text (see hx_text.h).
 *
 * Only the Latin-1 supplement letters (U+00C0..U+00FF) and œ/Œ are folded: that is all of
 * French, Spanish and Portuguese, which is what the network's clinics write. Other letters
 * stay as they are (their UTF-8 bytes are part of the word) so nothing is lost, only not
 * matched. Typographic apostrophes, dashes and the no-break space are read as their ASCII
 * forms. */
#include "hx_text.h"

#include <stdlib.h>
#include <string.h>

#include "hx_util.h"

/* Folded lowercase spelling of U+00C0..U+00FF; "" for the two that are not letters
 * (× and ÷, separators). */
static const char *const latin1[64] = {
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
    "d", "n", "o", "o", "o", "o", "o", "",  "o", "u", "u", "u", "u", "y", "th", "ss",
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
    "d", "n", "o", "o", "o", "o", "o", "",  "o", "u", "u", "u", "u", "y", "th", "y",
};

/* Decodes one code point at s (length left n); returns its byte length (1 for a bad byte,
 * with *cp = 0xFFFD). */
static size_t decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t len = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC2 ? 2 : 0;
    if (len == 0 || len > n || s[0] > 0xF4)
        goto bad;
    uint32_t c = s[0] & (0x3F >> (len - 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            goto bad;
        c = (c << 6) | (s[i] & 0x3F);
    }
    *cp = c;
    return len;
bad:
    *cp = 0xFFFD;
    return 1;
}

enum cls { C_SPACE, C_LETTER, C_DIGIT, C_PUNCT, C_BREAK };

/* The class of a code point and, for letters, its folded spelling in fold. */
static enum cls classify(uint32_t cp, const char **fold, char buf[2])
{
    *fold = NULL;
    if (cp < 0x80) {
        if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) {
            buf[0] = (char)(cp | 0x20);
            buf[1] = '\0';
            *fold = buf;
            return C_LETTER;
        }
        if (cp >= '0' && cp <= '9')
            return C_DIGIT;
        if (cp == ' ' || cp == '\t' || cp == '\r')
            return C_SPACE;
        if (cp == '\n')
            return C_BREAK;
        return C_PUNCT;
    }
    if (cp >= 0xC0 && cp <= 0xFF && latin1[cp - 0xC0][0]) {
        *fold = latin1[cp - 0xC0];
        return C_LETTER;
    }
    if (cp == 0x152 || cp == 0x153) {
        *fold = "oe";
        return C_LETTER;
    }
    if (cp == 0xA0 || cp == 0x2009 || cp == 0x202F)
        return C_SPACE;
    if (cp == 0xFFFD || (cp >= 0x80 && cp < 0xC0) || cp == 0xD7 || cp == 0xF7 || (cp >= 0x2000 && cp < 0x2070))
        return C_PUNCT;
    return C_LETTER;    /* another script: kept as it is, a word nobody matches */
}

typedef struct {
    hx_toks_t *toks;
    const char *text;
    size_t n;
    uint8_t field;
    hx_tok_t cur;           /* the word being built */
    size_t cur_len;
    bool cur_digits;        /* the word so far is digits */
    bool cur_lower;         /* the word so far has a lowercase letter */
    bool in_sentence;       /* a token was emitted since the last break */
} tk_t;

static hx_tok_t *push(tk_t *k)
{
    hx_toks_t *t = k->toks;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        hx_tok_t *grown = realloc(t->t, cap * sizeof *grown);
        if (!grown) {
            t->oom = true;
            return NULL;
        }
        t->t = grown;
        t->cap = cap;
    }
    hx_tok_t *tok = &t->t[t->n++];
    memset(tok, 0, sizeof *tok);
    tok->sentence = t->sentences;
    tok->field = k->field;
    k->in_sentence = true;
    return tok;
}

static void flush(tk_t *k)
{
    if (k->cur_len == 0)
        return;
    hx_tok_t *tok = push(k);
    if (tok) {
        *tok = k->cur;
        tok->sentence = k->toks->sentences;
        tok->field = k->field;
        tok->w[k->cur_len < HX_WORD_MAX ? k->cur_len : HX_WORD_MAX - 1] = '\0';
        tok->upper = !k->cur_lower && !k->cur_digits && k->cur_len >= 2;
        if (k->cur_digits) {
            tok->kind = HX_TOK_NUM;
            tok->value = strtol(tok->w, NULL, 10);
        }
    }
    k->cur_len = 0;
    k->cur_digits = false;
}

static void emit(tk_t *k, hx_tok_kind_t kind, const char *w, size_t start, size_t end)
{
    flush(k);
    hx_tok_t *tok = push(k);
    if (!tok)
        return;
    tok->kind = kind;
    strncpy(tok->w, w, HX_WORD_MAX - 1);
    tok->start = (uint32_t)start;
    tok->end = (uint32_t)end;
}

static void sentence_break(tk_t *k)
{
    flush(k);
    if (k->in_sentence) {
        k->toks->sentences++;
        k->in_sentence = false;
    }
}

static void add_chars(tk_t *k, const char *s, size_t start, size_t end, bool digit)
{
    if (k->cur_len == 0) {
        memset(&k->cur, 0, sizeof k->cur);
        k->cur.start = (uint32_t)start;
        k->cur_digits = digit;
        k->cur_lower = false;
    } else if (k->cur_digits != digit && k->cur_digits) {
        flush(k);           /* "45f" -> "45" "f"; "l4" stays a word with digits after */
        add_chars(k, s, start, end, digit);
        return;
    }
    for (; *s; s++)
        if (k->cur_len < HX_WORD_MAX - 1)
            k->cur.w[k->cur_len++] = *s;
    k->cur.end = (uint32_t)end;
}

static bool is_alnum_at(const tk_t *k, size_t i)
{
    if (i >= k->n)
        return false;
    unsigned char c = (unsigned char)k->text[i];
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0xC0;
}

static bool is_digit_at(const tk_t *k, size_t i)
{
    return i < k->n && k->text[i] >= '0' && k->text[i] <= '9';
}

/* "YYYY-MM-DD" at i: emits a date token and returns its length, else 0. */
static size_t try_date(tk_t *k, size_t i)
{
    if (k->cur_len || i + 10 > k->n || is_digit_at(k, i + 10))
        return 0;
    char d[11];
    memcpy(d, k->text + i, 10);
    d[10] = '\0';
    int64_t days;
    if (d[4] != '-' || d[7] != '-' || hx_date_parse(d, &days) != 0)
        return 0;
    emit(k, HX_TOK_DATE, d, i, i + 10);
    if (!k->toks->oom)
        k->toks->t[k->toks->n - 1].value = days;
    return 10;
}

/* Short letter pairs joined by a slash that clinicians write as one word. */
static bool slash_word(const tk_t *k, size_t i)
{
    if (k->cur_len == 0 || k->cur_len > 2 || k->cur_digits)
        return false;
    size_t j = i + 1;
    while (j < k->n && j - i <= 3 && ((k->text[j] | 0x20) >= 'a' && (k->text[j] | 0x20) <= 'z'))
        j++;
    return j > i + 1 && j - i <= 3 && !is_alnum_at(k, j);
}

/* A slash at i: "3/52" (a fraction), "c/o" (one word), else the connector word "/". */
static size_t slash(tk_t *k, size_t i)
{
    const char *t = k->text;
    if (k->cur_digits && is_digit_at(k, i + 1)) {
        size_t j = i + 1;
        int64_t den = 0;
        while (j < k->n && is_digit_at(k, j) && j - i < 4)
            den = den * 10 + (t[j++] - '0');
        k->cur.w[k->cur_len] = '\0';
        int64_t num = strtol(k->cur.w, NULL, 10);
        size_t start = k->cur.start;
        k->cur_len = 0;
        emit(k, HX_TOK_FRACTION, "/", start, j);
        if (!k->toks->oom) {
            k->toks->t[k->toks->n - 1].value = num;
            k->toks->t[k->toks->n - 1].den = (int32_t)den;
        }
        return j - i;
    }
    if (slash_word(k, i)) {
        add_chars(k, "/", i, i + 1, false);
        return 1;
    }
    emit(k, HX_TOK_WORD, "/", i, i + 1);     /* "bladder/bowel": a connector */
    return 1;
}

/* Handles one ASCII punctuation character at i; returns the bytes consumed. */
static size_t punct(tk_t *k, size_t i, char c)
{
    const char *t = k->text;
    if (c == '\'') {
        bool elision = k->cur_len == 1 ? strchr("ldjnscmt", k->cur.w[0]) != NULL
                                       : k->cur_len == 2 && !strncmp(k->cur.w, "qu", 2);
        if (elision && is_alnum_at(k, i + 1))
            flush(k);       /* French "l'épaule" -> "l" "epaule"; "don't" -> "dont" */
        return 1;
    }
    if (c == '&') {
        if (k->cur_len && !k->cur_digits && is_alnum_at(k, i + 1))
            add_chars(k, "&", i, i + 1, false);
        else
            emit(k, HX_TOK_WORD, "and", i, i + 1);
        return 1;
    }
    if (c == '/')
        return slash(k, i);
    if (c == '.') {
        if (k->cur_digits && is_digit_at(k, i + 1)) {
            add_chars(k, ".", i, i + 1, true);      /* 1.5: the value read is 1 */
            return 1;
        }
        if (k->cur_len && k->cur_len <= 3 && !k->cur_digits && is_alnum_at(k, i + 1))
            return 1;       /* e.g -> eg, a.m -> am */
        static const char *const abbrev[] = {"dr", "mr", "mrs", "ms", "st", "vs", "approx", "eg", "ie", "etc", "cf"};
        k->cur.w[k->cur_len < HX_WORD_MAX ? k->cur_len : HX_WORD_MAX - 1] = '\0';
        for (size_t a = 0; a < sizeof abbrev / sizeof abbrev[0]; a++)
            if (k->cur_len && !strcmp(k->cur.w, abbrev[a])) {
                flush(k);
                return 1;
            }
        sentence_break(k);
        return 1;
    }
    if (c == '?') {
        if (is_alnum_at(k, i + 1) || (i + 2 < k->n && t[i + 1] == ' ' && is_alnum_at(k, i + 2) && k->cur_len == 0))
            emit(k, HX_TOK_QUERY, "?", i, i + 1);
        else
            sentence_break(k);
        return 1;
    }
    if (c == '+' || c == '-') {
        if (k->cur_len == 0 && i + 2 < k->n && (t[i + 1] | 0x20) == 'v' && (t[i + 2] | 0x20) == 'e' &&
            !is_alnum_at(k, i + 3)) {
            emit(k, HX_TOK_WORD, c == '+' ? "positive" : "negative", i, i + 3);
            return 3;
        }
        flush(k);
        return 1;
    }
    if (c == '#') {
        emit(k, HX_TOK_WORD, "#", i, i + 1);
        return 1;
    }
    if (c == ';' || c == '!')
        sentence_break(k);
    else if (c == ':')
        emit(k, HX_TOK_COMMA, ":", i, i + 1);
    else if (c == ',' || c == '(' || c == ')' || c == '[' || c == ']')
        emit(k, HX_TOK_COMMA, ",", i, i + 1);
    else
        flush(k);
    return 1;
}

int hx_text_tokenize(hx_toks_t *toks, const char *text, uint8_t field)
{
    if (!toks)
        return -1;
    if (!text)
        return 0;
    tk_t k = {.toks = toks, .text = text, .n = strlen(text), .field = field};
    size_t i = 0;
    while (i < k.n && !toks->oom) {
        uint32_t cp;
        size_t len = decode((const unsigned char *)text + i, k.n - i, &cp);
        const char *fold;
        char buf[2];
        enum cls cl = classify(cp, &fold, buf);
        if (cp == 0x2019 || cp == 0x2018)
            cl = C_PUNCT, cp = '\'';
        else if (cp >= 0x2010 && cp <= 0x2015)
            cl = C_PUNCT, cp = '-';
        if (cl == C_DIGIT && k.cur_len == 0 && (len = try_date(&k, i)) > 0) {
            i += len;
            continue;
        }
        len = len ? len : 1;
        switch (cl) {
        case C_LETTER:
            if (cp >= 0x80 && !fold) {
                char raw[5] = {0};
                memcpy(raw, text + i, len);
                add_chars(&k, raw, i, i + len, false);
            } else {
                add_chars(&k, fold, i, i + len, false);
            }
            k.cur_lower |= (cp >= 'a' && cp <= 'z') || (cp >= 0xDF && cp <= 0xFF) || cp == 0x153;
            break;
        case C_DIGIT: {
            char d[2] = {(char)cp, '\0'};
            add_chars(&k, d, i, i + len, true);
            break;
        }
        case C_SPACE:
            flush(&k);
            break;
        case C_BREAK:
            sentence_break(&k);
            break;
        case C_PUNCT:
            len = cp < 0x80 ? punct(&k, i, (char)cp) : (flush(&k), len);
            break;
        }
        i += len;
    }
    sentence_break(&k);
    return toks->oom ? -1 : 0;
}

void hx_toks_free(hx_toks_t *toks)
{
    if (!toks)
        return;
    free(toks->t);
    memset(toks, 0, sizeof *toks);
}

bool hx_text_near(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (a[0] != b[0] || la + 2 < lb || lb + 2 < la || la >= HX_WORD_MAX || lb >= HX_WORD_MAX)
        return false;
    size_t max = la >= 11 && lb >= 11 ? 2 : 1;
    if ((la > lb ? la - lb : lb - la) > max)
        return false;
    /* Damerau-Levenshtein (optimal string alignment), three rows. */
    unsigned rows[3][HX_WORD_MAX + 1];
    unsigned *pp = rows[0], *p = rows[1], *c = rows[2];
    for (size_t j = 0; j <= lb; j++)
        p[j] = (unsigned)j;
    for (size_t i = 1; i <= la; i++) {
        c[0] = (unsigned)i;
        unsigned best = c[0];
        for (size_t j = 1; j <= lb; j++) {
            unsigned cost = a[i - 1] != b[j - 1];
            unsigned v = p[j] + 1;
            if (c[j - 1] + 1 < v)
                v = c[j - 1] + 1;
            if (p[j - 1] + cost < v)
                v = p[j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && pp[j - 2] + 1 < v)
                v = pp[j - 2] + 1;
            c[j] = v;
            if (v < best)
                best = v;
        }
        if (best > max)
            return false;
        unsigned *t = pp;
        pp = p;
        p = c;
        c = t;
    }
    return p[lb] <= max;
}

int hx_text_number_word(const char *w)
{
    static const struct {
        const char *w;
        int n;
    } words[] = {
        {"a", 1}, {"an", 1}, {"one", 1}, {"two", 2}, {"three", 3}, {"four", 4}, {"five", 5},
        {"six", 6}, {"seven", 7}, {"eight", 8}, {"nine", 9}, {"ten", 10}, {"eleven", 11},
        {"twelve", 12}, {"fifteen", 15}, {"twenty", 20}, {"thirty", 30}, {"few", 3},
        {"several", 3}, {"couple", 2}, {"un", 1}, {"une", 1}, {"deux", 2}, {"trois", 3},
        {"quatre", 4}, {"cinq", 5}, {"sept", 7}, {"huit", 8}, {"neuf", 9}, {"dix", 10},
        {"douze", 12}, {"quinze", 15}, {"vingt", 20}, {"quelques", 3}, {"plusieurs", 3},
    };
    if (!w)
        return -1;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (!strcmp(words[i].w, w))
            return words[i].n;
    return -1;
}
