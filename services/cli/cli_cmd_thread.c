/* `handoff thread ID`, `handoff note ID TEXT [--ask] [--attach FILE]`, `handoff reply ID TEXT`,
 * `handoff attachment POST_ID [--out FILE]`: a referral's care thread, between the referring
 * clinic and the clinics holding its handoffs (only they receive it). Posts go to scheduling,
 * which checks who posts (from the broker-set sender) and what is attached, stores them and
 * delivers them to every participant; the clinic keeps the posts it received (its own
 * included: scheduling sends the sender its copy) in its store like other messages. */
#include "cli_cmd.h"
#include "cli_fmt.h"
#include "hx_attach.h"
#include "hx_refjson.h"
#include "hx_thread_rules.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    Handoff__ThreadPost **posts;
    size_t n, cap;
} thread_t;

static void on_post(void *ud, const char *type, const uint8_t *data, size_t len, uint64_t at)
{
    (void)type, (void)at;
    thread_t *t = ud;
    Handoff__ThreadPost *p = handoff__thread_post__unpack(NULL, len, data);
    if (!p)
        return;
    for (size_t i = 0; i < t->n; i++)           /* a post delivered twice is one */
        if (strcmp(t->posts[i]->post_id, p->post_id) == 0) {
            handoff__thread_post__free_unpacked(p, NULL);
            return;
        }
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 16;
        Handoff__ThreadPost **grown = realloc(t->posts, cap * sizeof *grown);
        if (!grown) {
            handoff__thread_post__free_unpacked(p, NULL);
            return;
        }
        t->posts = grown;
        t->cap = cap;
    }
    t->posts[t->n++] = p;
}

static void thread_free(thread_t *t)
{
    for (size_t i = 0; i < t->n; i++)
        handoff__thread_post__free_unpacked(t->posts[i], NULL);
    free(t->posts);
    memset(t, 0, sizeof *t);
}

static json_t *post_json(const Handoff__ThreadPost *p)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:b, s:s}", "post_id", p->post_id, "kind", p->kind, "by",
                          p->by, "text", p->text, "at_ms", (json_int_t)p->at_ms, "in_reply_to", p->in_reply_to,
                          "awaiting_reply", p->awaiting_reply, "asked_by", p->asked_by);
    const Handoff__Attachment *a = p->attachment;
    if (j && a)
        json_object_set_new(j, "attachment", json_pack("{s:s, s:s, s:I, s:s}", "name", a->name, "media_type",
                                                       a->media_type, "size", (json_int_t)a->data.len, "sha256",
                                                       a->sha256));
    return j;
}

/* "awaiting a reply from ..." for the thread's latest post, or "" when nothing awaits. */
static void awaiting_text(cli_t *c, const thread_t *t, char *out, size_t cap)
{
    out[0] = '\0';
    const Handoff__ThreadPost *last = t->n ? t->posts[t->n - 1] : NULL;
    if (!last || !last->awaiting_reply)
        return;
    if (strcmp(last->asked_by, c->clinic) == 0)
        snprintf(out, cap, "awaiting a reply to this clinic's question");
    else
        snprintf(out, cap, "awaiting this clinic's reply to a question from %s", last->asked_by);
}

static int thread_show(cli_t *c, const char *id)
{
    if (!hx_referral_id_valid(id)) {
        fprintf(stderr, "handoff: thread: '%s' is not a referral id (R- and 16 characters of 0-9 A-Z without I L O U)\n",
                id);
        return EXIT_USAGE;
    }
    int rc = cli_sync_store(c, NULL);
    if (rc != EXIT_OK)
        return rc;
    thread_t t = {0};
    hx_clinic_query_t q = {.type = "handoff.ThreadPost", .referral_id = id};
    if (hx_clinic_each_received(c->store, &q, on_post, &t)) {
        thread_free(&t);
        return cli_clinic_failure(c, HX_EIO);
    }
    char wait[200];
    awaiting_text(c, &t, wait, sizeof wait);
    if (c->json) {
        json_t *posts = json_array();
        for (size_t i = 0; i < t.n; i++)
            json_array_append_new(posts, post_json(t.posts[i]));
        cli_print_json(json_pack("{s:s, s:o, s:b, s:s}", "referral_id", id, "posts", posts, "awaiting_reply",
                                 wait[0] != '\0', "asked_by", wait[0] ? t.posts[t.n - 1]->asked_by : ""));
    } else {
        for (size_t i = 0; i < t.n; i++) {
            char when[CLI_FMT_LEN];
            const Handoff__ThreadPost *p = t.posts[i];
            printf("%s  %s  %-8s %s%s%s\n", cli_time_abs(p->at_ms, when), p->by, p->kind, p->post_id,
                   p->in_reply_to[0] ? " re " : "", p->in_reply_to);
            printf("    %s\n", p->text);
            if (p->attachment)
                printf("    attachment: %s (%s, %zu bytes): handoff attachment %s\n", p->attachment->name,
                       p->attachment->media_type, p->attachment->data.len, p->post_id);
        }
        printf("%s: %zu post(s)%s%s\n", id, t.n, wait[0] ? "; " : "", wait);
    }
    thread_free(&t);
    return EXIT_OK;
}

/* Reads up to max bytes of path into *out (malloc'd); 0, or -1 after saying why (what names
 * the option). A file larger than max is refused without reading it. */
static int file_read(const char *what, const char *path, size_t max, uint8_t **out, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    struct stat sb;
    if (!f || fstat(fileno(f), &sb) != 0) {
        fprintf(stderr, "handoff: %s %s: %s\n", what, path, strerror(errno));
        return -1;
    }
    if (S_ISREG(sb.st_mode) && (uint64_t)sb.st_size > max) {
        fprintf(stderr, "handoff: %s %s: %llu bytes, at most %zu\n", what, path, (unsigned long long)sb.st_size,
                max);
        if (f != stdin)
            fclose(f);
        return -1;
    }
    uint8_t *buf = malloc(max + 2);
    size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
    int bad = !buf || ferror(f);
    if (f != stdin)
        fclose(f);
    if (bad || n > max) {
        fprintf(stderr, "handoff: %s %s: %s\n", what, path, bad ? "cannot be read" : "too large");
        free(buf);
        return -1;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

char *cli_summary_text(const char *arg)
{
    struct stat sb;
    if (strcmp(arg, "-") != 0 && (stat(arg, &sb) != 0 || !S_ISREG(sb.st_mode)))
        return strdup(arg);                     /* not a file: the text itself */
    uint8_t *text;
    size_t len;
    if (file_read("--summary", arg, HX_THREAD_TEXT_MAX, &text, &len) != 0)
        return NULL;
    if (memchr(text, '\0', len)) {
        fprintf(stderr, "handoff: --summary %s: holds a NUL byte; a summary is text\n", arg);
        free(text);
        return NULL;
    }
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        text[--len] = '\0';
    return (char *)text;
}

/* --attach FILE as an attachment (name: the file's own name); 0, or -1 after saying why. */
static int attachment_read(const char *path, Handoff__Attachment *a, uint8_t **data)
{
    size_t len;
    if (file_read("--attach", path, HX_ATTACH_MAX, data, &len) != 0)
        return -1;
    const char *slash = strrchr(path, '/');
    a->name = (char *)(slash ? slash + 1 : path);
    a->data = (ProtobufCBinaryData){len, *data};
    return 0;
}

/* Posts text of kind to the thread of id and prints the outcome (quiet: only a refusal or
 * failure, on stderr). */
static int thread_send(cli_t *c, const char *cmd, const char *id, const char *kind, const char *text, bool quiet)
{
    if (!hx_referral_id_valid(id)) {
        fprintf(stderr, "handoff: %s: '%s' is not a referral id (R- and 16 characters of 0-9 A-Z without I L O U)\n",
                cmd, id);
        return EXIT_USAGE;
    }
    char why[256];
    if (hx_thread_post_check(kind, text, "", why, sizeof why) != 0) {
        fprintf(stderr, "handoff: %s: %s\n", cmd, why);
        return EXIT_USAGE;
    }
    Handoff__ThreadPost p = HANDOFF__THREAD_POST__INIT;
    p.referral_id = (char *)id;
    p.kind = (char *)kind;
    p.text = (char *)text;
    Handoff__Attachment a = HANDOFF__ATTACHMENT__INIT;
    uint8_t *data = NULL;
    if (c->attach && attachment_read(c->attach, &a, &data) != 0)
        return EXIT_USAGE;
    p.attachment = c->attach ? &a : NULL;
    Handoff__ThreadPost *posted = NULL;
    Handoff__StatusUpdate *refused = NULL;
    int rc = hx_clinic_thread_post(c->store, &p, 4 * c->timeout_ms, &posted, &refused);
    free(data);
    if (rc)
        return cli_clinic_failure(c, rc);
    if (refused) {
        if (quiet)
            fprintf(stderr, "handoff: %s %s: the %s was refused: %s\n", cmd, id, kind, refused->reason);
        else if (c->json)
            cli_print_json(hx_status_to_json(refused));
        else
            printf("%s %s refused: %s\n", cmd, id, refused->reason);
        handoff__status_update__free_unpacked(refused, NULL);
        return EXIT_FAIL;
    }
    if (!posted && quiet) {
        fprintf(stderr, "handoff: %s %s: the %s was sent; no answer yet\n", cmd, id, kind);
        return EXIT_OK;
    }
    if (!posted) {
        printf("%s %s: sent; no answer yet (see 'handoff thread %s' later)\n", cmd, id, id);
        return EXIT_OK;
    }
    if (quiet)
        ;
    else if (c->json)
        cli_print_json(post_json(posted));
    else
        printf("%s: %s %s posted%s\n", id, posted->kind, posted->post_id,
               posted->awaiting_reply ? "; the thread awaits a reply" : "");
    handoff__thread_post__free_unpacked(posted, NULL);
    return EXIT_OK;
}

typedef struct {
    const char *post_id;
    Handoff__ThreadPost *found;
} find_t;

static void on_find(void *ud, const char *type, const uint8_t *data, size_t len, uint64_t at)
{
    (void)type, (void)at;
    find_t *f = ud;
    Handoff__ThreadPost *p = f->found ? NULL : handoff__thread_post__unpack(NULL, len, data);
    if (p && strcmp(p->post_id, f->post_id) == 0 && p->attachment)
        f->found = p;
    else if (p)
        handoff__thread_post__free_unpacked(p, NULL);
}

/* Writes a's bytes to path, never over an existing file; 0, or -1 after saying why. */
static int attachment_write(const Handoff__Attachment *a, const char *path)
{
    char hex[65];
    hx_attach_sha256_hex(a->data.data, a->data.len, hex);
    if (strcmp(hex, a->sha256) != 0) {
        fprintf(stderr, "handoff: attachment: its bytes do not match the SHA-256 scheduling gave (%s)\n", a->sha256);
        return -1;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        fprintf(stderr, "handoff: attachment: %s: %s\n", path, errno == EEXIST ? "exists; give --out another name"
                                                                            : strerror(errno));
        return -1;
    }
    size_t off = 0;
    while (off < a->data.len) {
        ssize_t w = write(fd, a->data.data + off, a->data.len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    if (close(fd) != 0 || off < a->data.len) {
        fprintf(stderr, "handoff: attachment: %s: not written whole\n", path);
        unlink(path);
        return -1;
    }
    return 0;
}

static int attachment_save(cli_t *c, const char *post_id)
{
    if (!hx_thread_post_id_valid(post_id)) {
        fprintf(stderr, "handoff: attachment: '%s' is not a post id (P- and 16 hex digits; see handoff thread ID)\n",
                post_id);
        return EXIT_USAGE;
    }
    int rc = cli_sync_store(c, NULL);
    if (rc != EXIT_OK)
        return rc;
    find_t f = {.post_id = post_id};
    hx_clinic_query_t q = {.type = "handoff.ThreadPost"};
    if (hx_clinic_each_received(c->store, &q, on_find, &f))
        return cli_clinic_failure(c, HX_EIO);
    if (!f.found) {
        fprintf(stderr, "handoff: attachment: no post %s with an attachment is in this clinic's store\n", post_id);
        return EXIT_NOTFOUND;
    }
    const Handoff__Attachment *a = f.found->attachment;
    /* its own name, here: only a name scheduling checked (no path separator) */
    const char *path = c->out ? c->out : strchr(a->name, '/') || !a->name[0] ? "attachment" : a->name;
    rc = attachment_write(a, path) == 0 ? EXIT_OK : EXIT_FAIL;
    if (rc == EXIT_OK && c->json)
        cli_print_json(json_pack("{s:s, s:s, s:s, s:I, s:s}", "post_id", post_id, "file", path, "media_type",
                                 a->media_type, "size", (json_int_t)a->data.len, "sha256", a->sha256));
    else if (rc == EXIT_OK)
        printf("%s: %s (%s, %zu bytes) written to %s\n", post_id, a->name, a->media_type, a->data.len, path);
    handoff__thread_post__free_unpacked(f.found, NULL);
    return rc;
}

int cmd_thread(cli_t *c, const char *cmd, int argc, char **argv)
{
    if (strcmp(cmd, "thread") == 0 && argc == 1)
        return thread_show(c, argv[0]);
    if (strcmp(cmd, "attachment") == 0 && argc == 1)
        return attachment_save(c, argv[0]);
    if (strcmp(cmd, "note") == 0 && argc == 2)
        return thread_send(c, cmd, argv[0], c->ask ? "question" : "note", argv[1], false);
    if (strcmp(cmd, "reply") == 0 && argc == 2)
        return thread_send(c, cmd, argv[0], "reply", argv[1], false);
    fprintf(stderr, "handoff: %s needs %s (see handoff help %s)\n", cmd,
            strcmp(cmd, "thread") == 0        ? "ID"
            : strcmp(cmd, "attachment") == 0  ? "POST_ID [--out FILE]"
            : strcmp(cmd, "note") == 0        ? "ID TEXT [--ask] [--attach FILE]"
                                              : "ID TEXT [--attach FILE]",
            cmd);
    return EXIT_USAGE;
}
