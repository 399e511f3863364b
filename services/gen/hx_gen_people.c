/* hx_gen_people — the people of the synthetic network: names and languages by culture
 * (patients and therapists), physicians' names, and the ASCII forms of names that ids and
 * e-mail addresses are made of. Every name is fictional. */
#include "hx_gen_internal.h"

#include <string.h>

/* Name "cultures" and the language each brings (NULL: English only). */
enum { C_EN, C_EN2, C_FR, C_ZH, C_PA, C_ES, C_PT, C_AR, C_TL, N_CULTURES };

typedef struct {
    const char *language;
    const char *given[12];
    const char *family[12];
} culture_t;

static const culture_t cultures[N_CULTURES] = {
    [C_EN] = {NULL,
              {"Olivia", "Liam", "Emma", "Noah", "Charlotte", "James", "Amelia", "Owen", "Hannah",
               "Ethan", "Grace", "Megan"},
              {"Thompson", "MacDonald", "Wilson", "Campbell", "Stewart", "Robertson", "Clarke",
               "Bennett", "Fraser", "Whitford", "Sinclair", "Gallagher"}},
    [C_EN2] = {NULL,
               {"Adebayo", "Chidi", "Priya", "Aarav", "Fatima", "Kwame", "Anika", "Tendai",
                "Rohan", "Nkechi", "Deepa", "Kofi"},
               {"Okafor", "Adeyemi", "Raman", "Patel", "Mensah", "Siddiqui", "Nair", "Banda",
                "Iyer", "Eze", "Menon", "Boateng"}},
    [C_FR] = {"fr",
              {"Élodie", "Mathieu", "Camille", "Julien", "Chloé", "Gabriel", "Émilie", "Louis",
               "Isabelle", "Antoine", "Marie-Ève", "François"},
              {"Tremblay", "Gagnon", "Roy", "Côté", "Bouchard", "Gauthier", "Morin", "Lavoie",
               "Fortin", "Pelletier", "Bélanger", "Lévesque"}},
    [C_ZH] = {"zh",
              {"Wei", "Mei Lin", "Jian", "Xiaoling", "Hao", "Yan", "Jun", "Li Na", "Chen", "Ying",
               "Zhi", "Hui"},
              {"Chen", "Wang", "Li", "Zhang", "Liu", "Huang", "Zhao", "Wu", "Zhou", "Lin", "Xu",
               "Sun"}},
    [C_PA] = {"pa",
              {"Harpreet", "Gurpreet", "Manpreet", "Jaspreet", "Amrit", "Simran", "Navdeep",
               "Rajveer", "Kiran", "Arjun", "Baljit", "Inderjit"},
              {"Singh", "Kaur", "Gill", "Sandhu", "Dhillon", "Sidhu", "Grewal", "Brar", "Sekhon",
               "Bains", "Virk", "Johal"}},
    [C_ES] = {"es",
              {"Sofía", "Mateo", "Valentina", "Diego", "Camila", "Alejandro", "Lucía", "Javier",
               "Isabel", "Carlos", "Ximena", "Andrés"},
              {"García", "Rodríguez", "Martínez", "Hernández", "López", "González", "Ruiz",
               "Álvarez", "Torres", "Ramírez", "Flores", "Vargas"}},
    [C_PT] = {"pt",
              {"João", "Beatriz", "Tiago", "Mariana", "Rafael", "Inês", "Lucas", "Ana", "Pedro",
               "Carolina", "Gonçalo", "Leonor"},
              {"Silva", "Santos", "Ferreira", "Pereira", "Oliveira", "Costa", "Martins", "Mendes",
               "Carvalho", "Sousa", "Rocha", "Almeida"}},
    [C_AR] = {"ar",
              {"Amira", "Omar", "Layla", "Karim", "Nadia", "Youssef", "Rania", "Hassan", "Mariam",
               "Samir", "Nour", "Tarek"},
              {"Haddad", "Khoury", "Karam", "Mansour", "Nasser", "Saleh", "Hamdan", "Aziz",
               "Farah", "Habib", "Darwish", "Sabbagh"}},
    [C_TL] = {"tl",
              {"Maria", "Jose", "Angelica", "Mark", "Kristine", "Paolo", "Jasmine", "Carlo",
               "Rowena", "Miguel", "Lorna", "Ramon"},
              {"Santos", "Reyes", "Cruz", "Bautista", "Ocampo", "Mendoza", "Villanueva",
               "Dela Cruz", "Aquino", "Navarro", "Castillo", "Pascual"}},
};

/* Who lives in the network's cities, roughly (patients and staff). English is by far the
 * most common language; French, Chinese, Punjabi, Spanish, Portuguese, Arabic and Tagalog
 * follow. */
static const unsigned culture_weights[N_CULTURES] = {
    [C_EN] = 55, [C_EN2] = 15, [C_FR] = 8, [C_ZH] = 5, [C_PA] = 4,
    [C_ES] = 4, [C_PT] = 3, [C_AR] = 3, [C_TL] = 3,
};

static const char *const physician_given[] = {"Rajiv", "Farah", "Helen", "David", "Anita",
                                              "Marc", "Susan", "Kenji", "Lina", "Paul"};
static const char *const physician_family[] = {"Menon", "Qureshi", "Doyle", "Bernstein", "Lau",
                                               "Lefebvre", "Osei", "Tanaka", "Haddad", "Novak"};

int gen_culture(rng_t *r, bool french_area)
{
    return french_area && chance(r, 55) ? C_FR : (int)weighted(r, culture_weights, N_CULTURES);
}

const char *gen_culture_language(int culture)
{
    return cultures[culture].language;
}

void gen_name(rng_t *r, int culture, const char **given, const char **family)
{
    *given = PICK(r, cultures[culture].given);
    *family = PICK(r, cultures[culture].family);
}

void gen_physician_name(rng_t *r, const char **given, const char **family)
{
    *given = PICK(r, physician_given);
    *family = PICK(r, physician_family);
}

size_t gen_therapist_languages(rng_t *r, int c, const char *out[4])
{
    size_t n = 0;
    const char *native = cultures[c].language;
    if (!native) {
        out[n++] = "en";
        if (chance(r, 10))
            out[n++] = "fr";
    } else if (c == C_FR) {
        unsigned x = (unsigned)below(r, 100);
        if (x < 75) {
            out[n++] = "fr";
            out[n++] = "en";
        } else if (x < 90) {
            out[n++] = "en";
            out[n++] = "fr";
        } else {
            out[n++] = "fr";
        }
    } else {
        unsigned x = (unsigned)below(r, 100);
        if (x < 80) {
            out[n++] = "en";
            out[n++] = native;
        } else if (x < 92) {
            out[n++] = native;
            out[n++] = "en";
        } else {
            out[n++] = "en";
        }
    }
    if (n < 4 && chance(r, 4)) {
        const char *extra = chance(r, 50) ? "es" : "fr";
        bool have = false;
        for (size_t i = 0; i < n; i++)
            have |= !strcmp(out[i], extra);
        if (!have)
            out[n++] = extra;
    }
    return n;
}

/* The ASCII letter for a Latin-1 letter encoded in UTF-8 as C3 xx ("é" -> 'e'), or 0. */
static char unaccent(unsigned char b)
{
    /* U+00C0..U+00FF in order; '.' for signs and letters with no ASCII fold. */
    static const char map[] = "aaaaaaaceeeeiiiidnooooo.ouuuuy.s"
                              "aaaaaaaceeeeiiiidnooooo.ouuuuy.y";
    _Static_assert(sizeof map == 65, "one entry per code point U+00C0..U+00FF");
    char c = b >= 0x80 && b < 0xC0 ? map[b - 0x80] : '.';
    return c == '.' ? 0 : c;
}

void gen_ascii_slug(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    for (; *s && o + 1 < cap; s++) {
        char c = *s;
        if (c >= 'A' && c <= 'Z') {
            out[o++] = (char)(c - 'A' + 'a');
        } else if (c >= 'a' && c <= 'z') {
            out[o++] = c;
        } else if ((unsigned char)c == 0xC3 && s[1]) {
            char a = unaccent((unsigned char)s[1]);
            if (a)
                out[o++] = a;
            s++;
        }
    }
    out[o] = '\0';
}

char gen_initial(const char *s)
{
    for (; *s; s++) {
        if (*s >= 'A' && *s <= 'Z')
            return *s;
        if (*s >= 'a' && *s <= 'z')
            return (char)(*s - 'a' + 'A');
    }
    return 'X';
}
