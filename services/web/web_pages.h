/* web_pages — what the portal's pages share: the frame every page is drawn in, a notice, and
 * how times and slots read. */
#ifndef HX_WEB_PAGES_H
#define HX_WEB_PAGES_H
#include "web.h"

#include <jansson.h>

/* The document up to <main> (live_version > 0: the page follows its clinic's changes). */
void web_page_begin(web_req_t *r, const char *title, uint64_t live_version);
void web_page_end(web_req_t *r);
/* A notice: ok (a status) or not (an alert). */
void web_flash(web_req_t *r, bool ok, const char *text);
/* "YYYY-MM-DD HH:MM" in the portal's local time ("-" for 0). */
void web_time_text(uint64_t ms, char out[32]);
/* A booking's slot in its clinic's wall clock, with offset and zone. */
void web_slot_text(json_t *booking, char *out, size_t cap);

#endif
