/* hx_accounts_store — see hx_accounts_store.h. */
#include "hx_accounts_store.h"

/* The schema, one step per dialect (hx_db.h). A session is known by the BLAKE2b hash of its
 * token: the store never holds a token. The audit says who viewed or did what: never a
 * patient's detail, only ids. The second factor: a row for each clinic that requires it ("":
 * the network's roles); each user's secret sealed (nonce, then crypto_secretbox) and the last
 * step accepted (replays); a pending sign-in by the hash of its token, with the new secret of a
 * user who enrols. The outbox of e-mail notices: sent 0 waiting, 1 sent, 2 given up; dedup the
 * event's key and the user. Then the FHIR API's tables (hx_api.c): a client's secret and a
 * token by their keyed hashes; a subscription's cursor and delivery state beside what its
 * client asked for. On SQLite the step also brings a file of the versions before the schema
 * was counted up to date: its tables are made only when missing (its users gain email and
 * notify first: hx_accounts.c's legacy_users). "user" is quoted: a reserved word of
 * PostgreSQL's. */
static const char schema_sqlite[] =
    "CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, clinic TEXT NOT NULL, role INTEGER NOT NULL,"
    "  hash TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL,"
    "  email TEXT NOT NULL DEFAULT '', notify INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS sessions (token_hash BLOB PRIMARY KEY, name TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL, seen_ms INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS failures (name TEXT PRIMARY KEY, count INTEGER NOT NULL,"
    "  held_until_ms INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL,"
    "  \"user\" TEXT NOT NULL, clinic TEXT NOT NULL, action TEXT NOT NULL, referral_id TEXT NOT NULL,"
    "  detail TEXT NOT NULL, address TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS audit_clinic ON audit(clinic, seq);"
    "CREATE TABLE IF NOT EXISTS totp_policy (clinic TEXT PRIMARY KEY, changed_ms INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS totp (name TEXT PRIMARY KEY, sealed BLOB NOT NULL, last_step INTEGER NOT NULL,"
    "  enrolled_ms INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS pending (token_hash BLOB PRIMARY KEY, name TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL, enrol BLOB) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS mail_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  dedup TEXT NOT NULL UNIQUE, \"user\" TEXT NOT NULL, to_addr TEXT NOT NULL,"
    "  subject TEXT NOT NULL, body TEXT NOT NULL, created_ms INTEGER NOT NULL,"
    "  attempts INTEGER NOT NULL DEFAULT 0, next_at_ms INTEGER NOT NULL,"
    "  sent INTEGER NOT NULL DEFAULT 0, done_ms INTEGER NOT NULL DEFAULT 0,"
    "  last_error TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX IF NOT EXISTS mail_outbox_due ON mail_outbox(sent, next_at_ms);"
    "CREATE TABLE IF NOT EXISTS api_clients (id TEXT PRIMARY KEY, clinic TEXT NOT NULL, scopes TEXT NOT NULL,"
    "  secret_hash BLOB NOT NULL, disabled INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0,"
    "  held_until_ms INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS api_tokens (hash BLOB PRIMARY KEY, client TEXT NOT NULL, clinic TEXT NOT NULL,"
    "  scopes TEXT NOT NULL, expires_ms INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS api_tokens_expiry ON api_tokens(expires_ms);"
    "CREATE TABLE IF NOT EXISTS api_subs (id TEXT PRIMARY KEY, client TEXT NOT NULL, clinic TEXT NOT NULL,"
    "  topic TEXT NOT NULL, endpoint TEXT NOT NULL, header TEXT NOT NULL, payload INTEGER NOT NULL,"
    "  status TEXT NOT NULL, reason TEXT NOT NULL, end_ms INTEGER NOT NULL, events INTEGER NOT NULL,"
    "  error TEXT NOT NULL, cursor INTEGER NOT NULL, failures INTEGER NOT NULL, next_ms INTEGER NOT NULL,"
    "  handshake_done INTEGER NOT NULL, created_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS api_subs_clinic ON api_subs(clinic);";

static const char schema_postgres[] =
    "CREATE TABLE users (name TEXT PRIMARY KEY, clinic TEXT NOT NULL, role INTEGER NOT NULL,"
    "  hash TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0, created_ms BIGINT NOT NULL,"
    "  email TEXT NOT NULL DEFAULT '', notify INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE sessions (token_hash BYTEA PRIMARY KEY, name TEXT NOT NULL, created_ms BIGINT NOT NULL,"
    "  seen_ms BIGINT NOT NULL);"
    "CREATE INDEX sessions_name ON sessions(name);"
    "CREATE TABLE failures (name TEXT PRIMARY KEY, count INTEGER NOT NULL, held_until_ms BIGINT NOT NULL DEFAULT 0);"
    "CREATE TABLE secrets (name TEXT PRIMARY KEY, value BYTEA NOT NULL);"
    "CREATE TABLE audit (seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, at_ms BIGINT NOT NULL,"
    "  \"user\" TEXT NOT NULL, clinic TEXT NOT NULL, action TEXT NOT NULL, referral_id TEXT NOT NULL,"
    "  detail TEXT NOT NULL, address TEXT NOT NULL);"
    "CREATE INDEX audit_clinic ON audit(clinic, seq);"
    "CREATE TABLE totp_policy (clinic TEXT PRIMARY KEY, changed_ms BIGINT NOT NULL);"
    "CREATE TABLE totp (name TEXT PRIMARY KEY, sealed BYTEA NOT NULL, last_step BIGINT NOT NULL,"
    "  enrolled_ms BIGINT NOT NULL);"
    "CREATE TABLE pending (token_hash BYTEA PRIMARY KEY, name TEXT NOT NULL, created_ms BIGINT NOT NULL,"
    "  enrol BYTEA);"
    "CREATE TABLE mail_outbox (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    "  dedup TEXT NOT NULL UNIQUE, \"user\" TEXT NOT NULL, to_addr TEXT NOT NULL, subject TEXT NOT NULL,"
    "  body TEXT NOT NULL, created_ms BIGINT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_at_ms BIGINT NOT NULL, sent INTEGER NOT NULL DEFAULT 0, done_ms BIGINT NOT NULL DEFAULT 0,"
    "  last_error TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX mail_outbox_due ON mail_outbox(sent, next_at_ms);"
    "CREATE TABLE api_clients (id TEXT PRIMARY KEY, clinic TEXT NOT NULL, scopes TEXT NOT NULL,"
    "  secret_hash BYTEA NOT NULL, disabled INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0,"
    "  held_until_ms BIGINT NOT NULL DEFAULT 0, created_ms BIGINT NOT NULL);"
    "CREATE TABLE api_tokens (hash BYTEA PRIMARY KEY, client TEXT NOT NULL, clinic TEXT NOT NULL,"
    "  scopes TEXT NOT NULL, expires_ms BIGINT NOT NULL);"
    "CREATE INDEX api_tokens_expiry ON api_tokens(expires_ms);"
    "CREATE TABLE api_subs (id TEXT PRIMARY KEY, client TEXT NOT NULL, clinic TEXT NOT NULL,"
    "  topic TEXT NOT NULL, endpoint TEXT NOT NULL, header TEXT NOT NULL, payload INTEGER NOT NULL,"
    "  status TEXT NOT NULL, reason TEXT NOT NULL, end_ms BIGINT NOT NULL, events BIGINT NOT NULL,"
    "  error TEXT NOT NULL, cursor BIGINT NOT NULL, failures INTEGER NOT NULL, next_ms BIGINT NOT NULL,"
    "  handshake_done INTEGER NOT NULL, created_ms BIGINT NOT NULL,"
    "  rowid BIGINT GENERATED ALWAYS AS IDENTITY);"   /* insertion order, as SQLite's rowid */
    "CREATE INDEX api_subs_clinic ON api_subs(clinic);";

const hx_db_step_t hx_accounts_steps[] = {{schema_sqlite, schema_postgres}};
const size_t hx_accounts_n_steps = sizeof hx_accounts_steps / sizeof *hx_accounts_steps;
