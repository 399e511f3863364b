/* fhir_test — helpers the FHIR unit suites (test_fhir_map, test_fhir_read, test_fhir_search)
 * share: messages as the view takes them (heap copies, bookings, a patient, a referrer, a
 * file), and JSON printed for assertion messages. */
#ifndef HX_FHIR_TEST_H
#define HX_FHIR_TEST_H
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "hx_fhir.h"

#define PT HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY
#define MT HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY
#define ST(x) HANDOFF__TASK_STATUS__TASK_##x

/* A heap copy of m, as the view wants it (it takes ownership). */
static inline void *copy(const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len ? len : 1);
    cr_assert_not_null(buf);
    protobuf_c_message_pack(m, buf);
    void *out = protobuf_c_message_unpack(m->descriptor, NULL, len, buf);
    free(buf);
    cr_assert_not_null(out);
    return out;
}

/* An hour with Amira Haddad from 2026-11-24T09:00 Toronto time (start_utc says when that is). */
static inline Handoff__Booking booking(const char *rid, Handoff__Discipline d, const char *clinic,
                                       const char *therapist, const char *start_utc)
{
    Handoff__Booking b = HANDOFF__BOOKING__INIT;
    b.referral_id = (char *)rid;
    b.discipline = d;
    b.clinic_id = (char *)clinic;
    b.therapist_id = (char *)therapist;
    b.therapist_name = "Amira Haddad";
    b.start = "2026-11-24T09:00";
    b.start_utc = (char *)start_utc;
    b.time_zone = "America/Toronto";
    b.utc_offset = "-05:00";
    b.minutes = 60;
    return b;
}

/* Ada Lovelace, every field of a patient set. */
static inline void ada(Handoff__Patient *p)
{
    p->given_name = "Ada";
    p->family_name = "Lovelace";
    p->birth_date = "1961-04-02";
    p->phone = "+1 905 555 0101";
    p->email = "ada@example.org";
    p->health_card = "1234-567-890";
    p->language = "en";
    p->postal_code = "L8P 4R5";
}

/* Isabel Ruiz, a physiotherapist registered with the CPO, referring from clinic. */
static inline void isabel(Handoff__Referrer *f, const char *clinic)
{
    f->name = "Isabel Ruiz";
    f->discipline = PT;
    f->registration_body = "CPO";
    f->registration_number = "19877";
    f->clinic_id = (char *)clinic;
}

/* a: a PNG file of 16 bytes named name. */
static inline void png_file(Handoff__Attachment *a, const char *name)
{
    static uint8_t png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
    handoff__attachment__init(a);
    a->name = (char *)name;
    a->data.data = png;
    a->data.len = sizeof png;
    a->media_type = "image/png";
}

/* j as compact JSON, for assertion messages (a static buffer: the next call overwrites it). */
static inline char *dump(const json_t *j)
{
    static char buf[8192];
    char *s = json_dumps(j, JSON_COMPACT);
    snprintf(buf, sizeof buf, "%s", s ? s : "(null)");
    free(s);
    return buf;
}

#endif
