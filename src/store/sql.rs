//! The store in SQL: a SQLite file for a single bridge, PostgreSQL for a pair sharing one
//! database. One set of portable queries through sqlx's `Any` driver; the schema is
//! versioned in `migrations/` and migrated at start.

use std::path::Path;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{Executor, Row};

use super::{Change, REJECTED_MEMORY, RejectedCall, Saved, Store, StoreError, StoredSession};
use super::{from_millis, to_millis};
use crate::converja::{AgentId, CallId, QueueId, Timestamp};

static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// How long opening the database may take before the bridge gives up with an error.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Which database a store is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A SQLite or PostgreSQL database holding the bridge's sessions.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    location: String,
    backend: Backend,
}

impl SqlStore {
    /// Opens the SQLite file at `path`, creating it (and its directory) if needed.
    pub async fn sqlite(path: &Path) -> Result<SqlStore, StoreError> {
        let location = path.display().to_string();
        let open_error = |reason: String| StoreError::Open {
            location: location.clone(),
            reason,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| open_error(format!("cannot create {}: {e}", dir.display())))?;
        }
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            // One writer at a time is all SQLite allows; the journal writes alone anyway.
            .max_connections(1)
            .acquire_timeout(CONNECT_TIMEOUT)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL keeps reads off the writer's way; FULL makes a commit survive the
                    // loss of the host, and commits are batched, so it costs one sync each.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = FULL").await?;
                    conn.execute("PRAGMA busy_timeout = 5000").await?;
                    Ok(())
                })
            })
            .connect(&format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .map_err(|e| open_error(e.to_string()))?;
        Self::migrated(pool, location, Backend::Sqlite).await
    }

    /// Connects to the PostgreSQL database at `url` (`postgres://user:password@host/db`).
    pub async fn postgres(url: &str) -> Result<SqlStore, StoreError> {
        let location = without_password(url);
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect(url)
            .await
            .map_err(|e| StoreError::Open {
                location: location.clone(),
                reason: e.to_string(),
            })?;
        Self::migrated(pool, location, Backend::Postgres).await
    }

    async fn migrated(
        pool: AnyPool,
        location: String,
        backend: Backend,
    ) -> Result<SqlStore, StoreError> {
        MIGRATIONS.run(&pool).await.map_err(|e| StoreError::Open {
            location: location.clone(),
            reason: format!("migration failed: {e}"),
        })?;
        Ok(SqlStore {
            pool,
            location,
            backend,
        })
    }

    /// Closes every connection: from now on the database is out of reach.
    #[cfg(test)]
    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }

    /// Whether several bridges can share this store (a server, not a file).
    pub fn is_shared(&self) -> bool {
        self.backend == Backend::Postgres
    }

    /// Takes (or renews) the lease named `name` for `holder` for `ttl` if it is free, expired
    /// or already `holder`'s; the lease's epoch if `holder` holds it now. The database's clock
    /// decides expiry, so the hosts' clocks never matter.
    pub(crate) async fn hold_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<u64>, StoreError> {
        let now = self.now_millis_sql();
        let query = format!(
            "INSERT INTO lease (name, holder, epoch, expires_at) VALUES ($1, $2, 1, {now} + $3) \
             ON CONFLICT (name) DO UPDATE SET \
             epoch = CASE WHEN lease.holder = excluded.holder THEN lease.epoch \
             ELSE lease.epoch + 1 END, \
             holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE lease.holder = excluded.holder OR lease.expires_at < {now} \
             RETURNING epoch"
        );
        // Dynamic only by the backend's clock expression, a constant of this file.
        let row = sqlx::query(sqlx::AssertSqlSafe(query))
            .bind(name)
            .bind(holder)
            .bind(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| StoreError::Query {
                action: "lease",
                reason: e.to_string(),
            })?;
        row.map(|row| row.try_get::<i64, _>("epoch"))
            .transpose()
            .map(|epoch| epoch.map(|e| e as u64))
            .map_err(|e| StoreError::Query {
                action: "lease",
                reason: e.to_string(),
            })
    }

    /// Gives up the lease if `holder` holds it, so that another can take it at once.
    pub(crate) async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE lease SET expires_at = 0 WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(|e| StoreError::Query {
                action: "lease",
                reason: e.to_string(),
            })
    }

    /// The database's current time in milliseconds since the Unix epoch, as SQL.
    fn now_millis_sql(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "CAST(unixepoch('subsec') * 1000 AS INTEGER)",
            Backend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        }
    }

    async fn read(&self) -> Result<Saved, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT username, agent, max_calls, proven, orphaned_at FROM sessions ORDER BY username",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut sessions = Vec::with_capacity(rows.len());
        for row in rows {
            sessions.push(StoredSession {
                username: row.try_get("username")?,
                agent: AgentId::new(row.try_get::<String, _>("agent")?),
                max_calls: u32::try_from(row.try_get::<i64, _>("max_calls")?).unwrap_or(1),
                proven: row.try_get("proven")?,
                orphaned_at: row
                    .try_get::<Option<i64>, _>("orphaned_at")?
                    .map(from_millis),
            });
        }
        let since = to_millis(SystemTime::now() - REJECTED_MEMORY);
        let rejected = sqlx::query(
            "SELECT call_id, queue_id, COALESCE(call_started, rejected_at) AS started \
             FROM rejected_calls WHERE rejected_at >= $1 ORDER BY rejected_at DESC",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|row| {
            Ok(RejectedCall {
                call: CallId(row.try_get::<i64, _>("call_id")? as u64),
                queue: row
                    .try_get::<Option<i64>, _>("queue_id")?
                    .map(|q| QueueId(q as u64)),
                started: Timestamp(row.try_get::<i64, _>("started")? as f64 / 1000.0),
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
        let high_water = sqlx::query("SELECT high_water FROM request_ids WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?
            .map(|row| row.try_get::<i64, _>("high_water"))
            .transpose()?
            .unwrap_or(0);
        let pids = sqlx::query("SELECT pid_key, username FROM session_pids ORDER BY pid_key")
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|row| Ok((row.try_get("pid_key")?, row.try_get("username")?)))
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(Saved {
            sessions,
            rejected,
            request_high_water: u64::try_from(high_water).unwrap_or(0),
            pids,
        })
    }

    async fn write(&self, changes: &[Change]) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let now = to_millis(SystemTime::now());
        for change in changes {
            write_change(&mut tx, change, now).await?;
        }
        if changes.iter().any(|c| matches!(c, Change::Rejected { .. })) {
            sqlx::query("DELETE FROM rejected_calls WHERE rejected_at < $1")
                .bind(to_millis(SystemTime::now() - REJECTED_MEMORY))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }
}

/// Writes one change in the transaction `conn` is in; `now` is the time of the batch.
async fn write_change(
    conn: &mut sqlx::AnyConnection,
    change: &Change,
    now: i64,
) -> Result<(), sqlx::Error> {
    match change {
        Change::Session(s) => {
            sqlx::query(
                "INSERT INTO sessions \
                 (username, agent, max_calls, proven, orphaned_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (username) DO UPDATE SET agent = excluded.agent, \
                 max_calls = excluded.max_calls, proven = excluded.proven, \
                 orphaned_at = excluded.orphaned_at, updated_at = excluded.updated_at",
            )
            .bind(&s.username)
            .bind(s.agent.as_str())
            .bind(i64::from(s.max_calls))
            .bind(s.proven.clone())
            .bind(s.orphaned_at.map(to_millis))
            .bind(now)
            .execute(&mut *conn)
            .await?;
        }
        Change::Orphaned { username, at } => {
            sqlx::query(
                "UPDATE sessions SET orphaned_at = $2, updated_at = $3 WHERE username = $1",
            )
            .bind(username)
            .bind(to_millis(*at))
            .bind(now)
            .execute(&mut *conn)
            .await?;
        }
        Change::Ended(username) => {
            for query in [
                "DELETE FROM sessions WHERE username = $1",
                "DELETE FROM session_pids WHERE username = $1",
            ] {
                sqlx::query(query)
                    .bind(username)
                    .execute(&mut *conn)
                    .await?;
            }
        }
        Change::Pid { key, username } => {
            sqlx::query(
                "INSERT INTO session_pids (pid_key, username, created_at) \
                 VALUES ($1, $2, $3) ON CONFLICT (pid_key) DO UPDATE SET \
                 username = excluded.username, created_at = excluded.created_at",
            )
            .bind(key)
            .bind(username)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        }
        _ => write_call_change(conn, change).await?,
    }
    Ok(())
}

/// Writes one change about calls or request ids.
async fn write_call_change(
    conn: &mut sqlx::AnyConnection,
    change: &Change,
) -> Result<(), sqlx::Error> {
    match change {
        Change::Rejected {
            call,
            at,
            queue,
            started,
        } => {
            sqlx::query(
                "INSERT INTO rejected_calls (call_id, rejected_at, queue_id, call_started) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (call_id) DO UPDATE SET \
                 rejected_at = excluded.rejected_at, queue_id = excluded.queue_id, \
                 call_started = excluded.call_started",
            )
            .bind(call.0 as i64)
            .bind(to_millis(*at))
            .bind(queue.0 as i64)
            .bind((started.0 * 1000.0) as i64)
            .execute(&mut *conn)
            .await?;
        }
        Change::RejectionOver(call) => {
            sqlx::query("DELETE FROM rejected_calls WHERE call_id = $1")
                .bind(call.0 as i64)
                .execute(&mut *conn)
                .await?;
        }
        Change::RequestHighWater(id) => {
            sqlx::query(
                "INSERT INTO request_ids (id, high_water) VALUES (1, $1) \
                 ON CONFLICT (id) DO UPDATE SET high_water = CASE \
                 WHEN excluded.high_water > request_ids.high_water \
                 THEN excluded.high_water ELSE request_ids.high_water END",
            )
            .bind(i64::try_from(*id).unwrap_or(i64::MAX))
            .execute(&mut *conn)
            .await?;
        }
        Change::Session(_) | Change::Orphaned { .. } | Change::Ended(_) | Change::Pid { .. } => {}
    }
    Ok(())
}

impl Store for SqlStore {
    fn load(&self) -> BoxFuture<'_, Result<Saved, StoreError>> {
        Box::pin(async move {
            self.read().await.map_err(|e| StoreError::Query {
                action: "read",
                reason: e.to_string(),
            })
        })
    }

    fn apply<'a>(&'a self, changes: &'a [Change]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.write(changes).await.map_err(|e| StoreError::Query {
                action: "write",
                reason: e.to_string(),
            })
        })
    }

    fn location(&self) -> String {
        self.location.clone()
    }
}

/// `url` with any password replaced, for logs.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((user, host)) => {
            let user = user.split_once(':').map_or(user, |(u, _)| u);
            format!("{scheme}://{user}:********@{host}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_the_logs() {
        assert_eq!(
            without_password("postgres://bridge:s3cret@db:5432/converja"),
            "postgres://bridge:********@db:5432/converja"
        );
        assert_eq!(
            without_password("postgres://db/converja"),
            "postgres://db/converja"
        );
    }

    fn session(username: &str, orphaned: Option<u64>) -> StoredSession {
        StoredSession {
            username: username.into(),
            agent: AgentId::new(format!("a{username}")),
            max_calls: 3,
            proven: Some(username.into()),
            orphaned_at: orphaned.map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s)),
        }
    }

    /// A database to open again and again, as successive processes do.
    enum Db {
        Sqlite(tempfile::TempDir),
        Postgres(converja_testkit::postgres::LocalPostgres),
    }

    impl Db {
        fn sqlite() -> Db {
            Db::Sqlite(tempfile::tempdir().expect("temp dir"))
        }

        fn postgres() -> Db {
            Db::Postgres(
                converja_testkit::postgres::LocalPostgres::start()
                    .unwrap_or_else(|e| panic!("{e}")),
            )
        }

        async fn open(&self) -> SqlStore {
            match self {
                Db::Sqlite(dir) => SqlStore::sqlite(&dir.path().join("state").join("sessions.db"))
                    .await
                    .expect("open"),
                Db::Postgres(server) => SqlStore::postgres(&server.url()).await.expect("open"),
            }
        }
    }

    async fn keeps_what_was_written_across_opens(db: Db) {
        let store = db.open().await;
        let now = SystemTime::now();
        store
            .apply(&[
                Change::Session(session("1001", None)),
                Change::Session(session("1002", None)),
                Change::Session(session("1003", None)),
                Change::Orphaned {
                    username: "1002".into(),
                    at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
                },
                Change::Ended("1003".into()),
                Change::Rejected {
                    call: CallId(42),
                    at: now,
                    queue: QueueId(7),
                    started: Timestamp(1_700_000_000.25),
                },
                Change::Rejected {
                    call: CallId(43),
                    at: now,
                    queue: QueueId(7),
                    started: Timestamp(1_700_000_001.0),
                },
                Change::RejectionOver(CallId(43)),
                Change::Rejected {
                    call: CallId(7),
                    at: now - REJECTED_MEMORY - Duration::from_secs(60),
                    queue: QueueId(7),
                    started: Timestamp(1_700_000_000.0),
                },
                Change::Pid {
                    key: "k1".into(),
                    username: "1001".into(),
                },
                Change::Pid {
                    key: "k3".into(),
                    username: "1003".into(),
                },
                Change::Ended("1003".into()),
                Change::RequestHighWater(500),
                Change::RequestHighWater(400),
            ])
            .await
            .expect("write");
        store.pool.close().await;

        // Opening again runs the migrations again: nothing to do, nothing lost.
        let again = db.open().await;
        let saved = again.load().await.expect("read");
        assert_eq!(
            saved.sessions,
            vec![session("1001", None), session("1002", Some(1_700_000_000))]
        );
        assert_eq!(
            saved.rejected,
            vec![RejectedCall {
                call: CallId(42),
                queue: Some(QueueId(7)),
                started: Timestamp(1_700_000_000.25),
            }],
            "old rejections are pruned, and those the platform no longer has"
        );
        assert_eq!(
            saved.pids,
            vec![("k1".to_owned(), "1001".to_owned())],
            "an ended session's pids are gone"
        );
        assert_eq!(saved.request_high_water, 500, "the mark never goes down");
    }

    #[tokio::test]
    async fn a_sqlite_file_keeps_what_was_written_across_opens() {
        keeps_what_was_written_across_opens(Db::sqlite()).await;
    }

    #[tokio::test]
    async fn a_postgres_database_keeps_what_was_written_across_opens() {
        keeps_what_was_written_across_opens(Db::postgres()).await;
    }

    #[tokio::test]
    async fn a_failed_batch_leaves_nothing_behind() {
        let db = Db::sqlite();
        let store = db.open().await;
        store
            .apply(&[Change::Session(session("1001", None))])
            .await
            .expect("write");
        sqlx::query("DROP TABLE request_ids")
            .execute(&store.pool)
            .await
            .expect("drop");
        let failed = store
            .apply(&[Change::Ended("1001".into()), Change::RequestHighWater(9)])
            .await;
        assert!(
            matches!(failed, Err(StoreError::Query { .. })),
            "{failed:?}"
        );
        let rows = sqlx::query("SELECT username FROM sessions")
            .fetch_all(&store.pool)
            .await
            .expect("read");
        assert_eq!(rows.len(), 1, "the delete was rolled back with the batch");
    }
}
