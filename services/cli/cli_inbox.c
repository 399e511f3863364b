/* cli_inbox — the grouped inbox as tables (cli_inbox.h), from the library's row JSON. */
#include "cli_inbox.h"
#include "cli_fmt.h"
#include "cli_table.h"

#include <stdlib.h>
#include <string.h>

static const char *jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static uint64_t jms(const json_t *o, const char *key)
{
    json_int_t ms = json_integer_value(json_object_get(o, key));
    return ms > 0 ? (uint64_t)ms : 0;
}

/* "physiotherapy" or "physiotherapy +1" when there are two bookings. */
static void booking_cell(const json_t *bookings, const char *key, char *out, size_t cap)
{
    size_t n = json_array_size(bookings);
    snprintf(out, cap, "%s%s", jstr(json_array_get(bookings, 0), key), n > 1 ? " +1" : "");
}

/* Group g's line and table from its rows (hx_inbox_json's array, oldest update first). */
static void print_group(const json_t *rows, hx_group_t g, FILE *out, uint64_t now_ms)
{
    size_t n = json_array_size(rows);
    fprintf(out, "%s (%zu)\n", hx_group_title(g), n);
    if (n == 0)
        return;
    static const char *const h_new[] = {"REFERRAL", "PATIENT", "BORN", "DISCIPLINE", "THERAPIST", "START", "MIN",
                                        "FROM", "RECEIVED"};
    static const char *const h_pending[] = {"REFERRAL", "REF", "PATIENT", "STATUS", "SINCE", "UPDATED", "DETAIL"};
    static const char *const h_booked[] = {"REFERRAL", "REF", "PATIENT", "DISCIPLINE", "THERAPIST", "START",
                                           "WITH", "STATUS", "UPDATED"};
    static const char *const h_declined[] = {"REFERRAL", "REF", "PATIENT", "WITH", "STATUS", "UPDATED", "REASON"};
    cli_table_t *t = g == HX_GROUP_NEW       ? cli_table_new(9, h_new, "llllllrll")
                     : g == HX_GROUP_PENDING ? cli_table_new(7, h_pending, NULL)
                     : g == HX_GROUP_BOOKED  ? cli_table_new(9, h_booked, NULL)
                                             : cli_table_new(7, h_declined, NULL);
    if (!t)
        return;
    cli_table_cap(t, 2, 28);            /* the patient's name */
    for (size_t i = 0; i < n; i++) {
        const json_t *r = json_array_get(rows, i);
        const json_t *bookings = json_object_get(r, "bookings"), *b = json_array_get(bookings, 0);
        bool received = strcmp(jstr(r, "side"), "received") == 0;
        const char *rid = jstr(r, "referral_id"), *ref = jstr(r, "ref"), *other = jstr(r, "other_clinic"),
                   *reason = jstr(r, "reason"), *status = jstr(r, "status");
        char since[CLI_FMT_LEN], updated[CLI_FMT_LEN], start[CLI_FMT_LEN], minutes[16], with[96], disc[48],
            ther[128];
        cli_time_ago(now_ms, jms(r, "since_ms"), since);
        cli_time_ago(now_ms, jms(r, "updated_ms"), updated);
        cli_slot_text(jstr(b, "start"), jstr(b, "utc_offset"), start);
        snprintf(minutes, sizeof minutes, "%lld", (long long)json_integer_value(json_object_get(b, "minutes")));
        if (received)
            snprintf(with, sizeof with, "from %s", other[0] ? other : "?");
        else
            snprintf(with, sizeof with, "%s%s", json_array_size(bookings) ? "to " : "-", jstr(b, "clinic_id"));
        booking_cell(bookings, "discipline", disc, sizeof disc);
        booking_cell(bookings, "therapist_name", ther, sizeof ther);
        const char *patient = jstr(r, "patient")[0] ? jstr(r, "patient") : "-";
        if (g == HX_GROUP_NEW) {
            const char *row[] = {rid, patient, jstr(r, "born"), disc, ther, start, minutes, other, updated};
            cli_table_add(t, row);
        } else if (g == HX_GROUP_PENDING) {
            const char *row[] = {rid, ref, patient, status, since, updated, reason};
            cli_table_add(t, row);
        } else if (g == HX_GROUP_BOOKED) {
            const char *row[] = {rid, ref, patient, disc, ther, start, with, status, updated};
            cli_table_add(t, row);
        } else {
            const char *row[] = {rid, ref, patient, with, status, updated, reason};
            cli_table_add(t, row);
        }
    }
    cli_table_print(t, out);
    cli_table_destroy(&t);
}

void cli_inbox_print(const hx_inbox_t *in, FILE *out, uint64_t now_ms)
{
    json_t *all = hx_inbox_json(in);
    for (int g = 0; g < HX_GROUP_COUNT; g++) {
        if (g)
            fputc('\n', out);
        print_group(json_object_get(all, hx_group_key((hx_group_t)g)), (hx_group_t)g, out, now_ms);
    }
    json_decref(all);
}

json_t *cli_inbox_json(const hx_inbox_t *in)
{
    static const char *const portal_only[] = {"folder", "needs_reply", "born"};
    json_t *all = hx_inbox_json(in), *rows, *row;
    const char *group;
    size_t i;
    json_object_foreach(all, group, rows) {
        json_array_foreach(rows, i, row) {
            for (size_t k = 0; k < sizeof portal_only / sizeof *portal_only; k++)
                json_object_del(row, portal_only[k]);
        }
    }
    return all;
}
