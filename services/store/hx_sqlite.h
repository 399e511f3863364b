/* hx_sqlite — what every SQLite store of the project does the same way. */
#ifndef HX_SQLITE_H
#define HX_SQLITE_H

#include <sqlite3.h>

/* Puts db in WAL mode. Two connections turning the same new file to WAL at the same moment
 * (two programs of one clinic starting together, two scheduling workers) both hold a read lock
 * and both want to write: SQLite then answers SQLITE_BUSY at once, without the busy handler,
 * since waiting could deadlock. The change is tried again every 10 ms for up to timeout_ms.
 * Returns SQLite's result code (SQLITE_OK, or SQLITE_BUSY when the other never let go). */
int hx_sqlite_wal(sqlite3 *db, unsigned timeout_ms);

#endif
