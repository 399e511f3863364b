/* hx_text — the word tokenizer and normaliser triage reads referral text with: UTF-8 in,
 * lowercase ASCII words out (accents of the Latin-1 letters folded: "anesthésie" ->
 * "anesthesie", "œdème" -> "oedeme"), punctuation split off, sentences numbered, each word
 * keeping where it came from so a decision can quote the words as written. */
#ifndef HX_TEXT_H
#define HX_TEXT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HX_WORD_MAX 40          /* a longer word is cut (still one token) */

typedef enum {
    HX_TOK_WORD = 0,            /* letters (and &, as in "b&b"; / in "c/o", "h/o"); a lone
                                 * "/" is the word "/" (a connector: "bladder/bowel") */
    HX_TOK_NUM,                 /* digits: value */
    HX_TOK_FRACTION,            /* "3/52", "2/7", "6/12": value / den (weeks, days, months) */
    HX_TOK_DATE,                /* "2026-11-09": value = days since 1970-01-01 */
    HX_TOK_COMMA,               /* "," for , ( ) [ ]; ":" for a colon — inside a sentence */
    HX_TOK_QUERY,               /* "?" written before a word: "?CES", "? fracture" */
} hx_tok_kind_t;

typedef struct {
    char w[HX_WORD_MAX];        /* normalised text ("," for a comma, "?" for a query) */
    hx_tok_kind_t kind;
    int64_t value;
    int32_t den;
    uint32_t start, end;        /* byte range in the source text */
    uint32_t sentence;          /* sentence number, counted across every text added */
    uint8_t field;              /* which text it came from (the caller's number) */
    bool upper;                 /* written in capitals, 2+ letters ("CES", not "ces" or "Ces") */
} hx_tok_t;

typedef struct {
    hx_tok_t *t;
    size_t n, cap;
    uint32_t sentences;         /* next sentence number */
    bool oom;
} hx_toks_t;

/* Appends the tokens of text (UTF-8; invalid bytes are separators) to toks, marking them
 * with field; the text starts a new sentence. Returns 0, or -1 when out of memory. */
int hx_text_tokenize(hx_toks_t *toks, const char *text, uint8_t field);
/* Frees what the tokens hold and empties toks. */
void hx_toks_free(hx_toks_t *toks);
/* True when a and b are the same word or differ by one edit (insert, delete, substitute,
 * or swap of two neighbours), or by two when both are at least 11 letters long; the first
 * letter must agree. For misspellings of long words only (see hx_triage.c). */
bool hx_text_near(const char *a, const char *b);
/* The number a word spells ("two" -> 2, "deux" -> 2, "a"/"an"/"un"/"une" -> 1, "few" ->
 * 3, "several" -> 3, "couple" -> 2), or -1. */
int hx_text_number_word(const char *w);

#endif
