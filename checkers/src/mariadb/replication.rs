//! Replication set-up and failover, as an operator or an HA tool does them with SQL:
//! replicas' `CHANGE MASTER` names rift's `repl` listener of the primary, so every
//! replication stream crosses rift; `promote` stops replication on the most advanced
//! replica, makes it writable and points the other replicas at it.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::client::{Session, SqlError};
use super::observer::{MariaObserver, MariaStatus};
use super::plan::{DATABASE, PASSWORD, USER};

/// Deadline of each statement of set-up and failover.
const STATEMENT: Duration = Duration::from_secs(3);

/// A member as replication sees it: its real port (where SQL goes) and rift's
/// listener for it (what replicas dial).
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    pub name: String,
    pub port: u16,
    pub rift_repl_port: u16,
}

async fn session(m: &Member) -> Result<Session, SqlError> {
    Session::connect(&m.name, m.port, STATEMENT).await
}

fn change_master(primary: &Member) -> String {
    format!(
        "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='{USER}', \
         MASTER_PASSWORD='{PASSWORD}', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, \
         MASTER_HEARTBEAT_PERIOD=0.5",
        primary.rift_repl_port
    )
}

/// Makes `replicas` read-only replicas of `primary` (through rift), then creates the
/// workload's tables on the primary once every replica is connected, so that with
/// semi-sync on no DDL waits out the timeout.
pub async fn configure(
    observer: &MariaObserver,
    primary: &Member,
    replicas: &[Member],
    semi_sync: bool,
    timeout: Duration,
) -> Result<(), SqlError> {
    for r in replicas {
        let mut s = session(r).await?;
        s.run("SET GLOBAL read_only=ON", STATEMENT).await?;
        s.run(&change_master(primary), STATEMENT).await?;
        s.run("START SLAVE", STATEMENT).await?;
        s.close().await;
    }
    let names: Vec<String> = replicas.iter().map(|r| r.name.clone()).collect();
    wait_replicating(observer, &primary.name, &names, semi_sync, timeout).await?;
    let mut p = session(primary).await?;
    for sql in [
        format!("CREATE DATABASE IF NOT EXISTS {DATABASE}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {DATABASE}.register (k VARCHAR(64) PRIMARY KEY, \
             v BIGINT NOT NULL) ENGINE=InnoDB"
        ),
        // One row per write: what the no-lost-writes check reads back after the heal.
        format!(
            "CREATE TABLE IF NOT EXISTS {DATABASE}.writes (v BIGINT PRIMARY KEY, \
             k VARCHAR(64) NOT NULL, KEY (k)) ENGINE=InnoDB"
        ),
    ] {
        p.run(&sql, STATEMENT).await?;
    }
    p.close().await;
    wait_replicating(observer, &primary.name, &names, semi_sync, timeout).await
}

/// Waits until every replica runs both replication threads and has applied what the
/// primary has written (and, with semi-sync, the primary counts every replica as a
/// semi-sync client).
pub async fn wait_replicating(
    observer: &MariaObserver,
    primary: &str,
    replicas: &[String],
    semi_sync: bool,
    timeout: Duration,
) -> Result<(), SqlError> {
    let start = Instant::now();
    loop {
        let p = observer.status(primary, STATEMENT).await;
        let mut lagging = Vec::new();
        for r in replicas {
            match (observer.status(r, STATEMENT).await, &p) {
                (Ok(s), Ok(p)) if in_step(&s, p) => {}
                (Ok(s), _) => lagging.push(format!("{r}: {}", describe(&s))),
                (Err(e), _) => lagging.push(e.to_string()),
            }
        }
        let clients_ok = match &p {
            Ok(p) => !semi_sync || p.semi_sync.master_clients as usize >= replicas.len(),
            Err(e) => {
                lagging.push(e.to_string());
                false
            }
        };
        if lagging.is_empty() && clients_ok {
            return Ok(());
        }
        if start.elapsed() > timeout {
            let clients = p.map(|p| p.semi_sync.master_clients).unwrap_or(0);
            return Err(SqlError::Connection {
                node: primary.to_string(),
                message: format!(
                    "replicas not in step after {timeout:?} (semi-sync clients {clients}): {}",
                    lagging.join("; ")
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn in_step(replica: &MariaStatus, primary: &MariaStatus) -> bool {
    replica.replica.as_ref().is_some_and(|r| {
        r.io_running == "Yes" && r.sql_running && replica.gtid_slave_pos == primary.gtid_binlog_pos
    })
}

pub fn describe(s: &MariaStatus) -> String {
    match &s.replica {
        Some(r) => format!(
            "replica (io {}, sql {}, at {:?}, {})",
            r.io_running, r.sql_running, s.gtid_slave_pos, r.last_io_error
        ),
        None => format!(
            "{} at {:?}",
            if s.read_only { "read-only" } else { "writable" },
            s.gtid_binlog_pos
        ),
    }
}

/// The sequence number of a GTID position in domain 0 (`0-1-57` -> 57); positions of
/// other domains do not occur in the lab.
pub fn seq(pos: &str) -> u64 {
    pos.split(',')
        .filter_map(|g| {
            let mut parts = g.trim().split('-');
            let domain = parts.next()?;
            let _server = parts.next()?;
            let seq = parts.next()?;
            (domain == "0").then(|| seq.parse().ok()).flatten()
        })
        .max()
        .unwrap_or(0)
}

/// What `promote` did, recorded as the nemesis operation's value.
#[derive(Debug, Clone, Serialize)]
pub struct Promotion {
    pub old_primary: String,
    pub new_primary: String,
    /// The replicas now replicating from the new primary.
    pub repointed: Vec<String>,
    /// Each candidate's applied position when replication stopped, and how long its
    /// STOP SLAVE took (ms).
    pub positions: Vec<(String, String, u64)>,
    /// The new primary's position when it became writable.
    pub gtid_binlog_pos: String,
    /// From the start of the failover until replication had stopped everywhere.
    pub stop_replication_ms: u64,
    /// From the start until the last replica was pointed at the new primary.
    pub total_ms: u64,
}

/// Fails over from `old` to the most advanced of `replicas` (node order breaks
/// ties), as an HA tool would without reaching the old primary: stop replication on
/// every replica, make the chosen one writable, point the others at it.
pub async fn promote(old: &str, replicas: &[Member]) -> Result<Promotion, SqlError> {
    let Some(first) = replicas.first() else {
        return Err(SqlError::Connection {
            node: old.to_string(),
            message: "no replica to promote".into(),
        });
    };
    let started = Instant::now();
    // All at once: on a replica whose primary is cut off, STOP SLAVE takes about 2 s
    // (measured on 10.11), and an HA tool does not wait for one before the next.
    let stopped = futures::future::join_all(replicas.iter().map(stop_replication)).await;
    let mut positions = Vec::new();
    for r in stopped {
        positions.push(r?);
    }
    let stop_ms = started.elapsed().as_millis() as u64;
    let best = replicas
        .iter()
        .zip(&positions)
        .fold((first, 0u64), |(b, bs), (r, (_, pos, _))| {
            let s = seq(pos);
            if s > bs { (r, s) } else { (b, bs) }
        })
        .0;
    let mut s = session(best).await?;
    s.run("RESET SLAVE ALL", STATEMENT).await?;
    s.run("SET GLOBAL read_only=OFF", STATEMENT).await?;
    let gtid_binlog_pos = s
        .row("SELECT @@gtid_binlog_pos AS pos", STATEMENT)
        .await?
        .map(|row| super::client::text(&row, "pos").to_string())
        .unwrap_or_default();
    s.close().await;
    let mut repointed = Vec::new();
    for r in replicas.iter().filter(|r| r.name != best.name) {
        let mut s = session(r).await?;
        s.run(&change_master(best), STATEMENT).await?;
        s.run("START SLAVE", STATEMENT).await?;
        s.close().await;
        repointed.push(r.name.clone());
    }
    Ok(Promotion {
        old_primary: old.to_string(),
        new_primary: best.name.clone(),
        repointed,
        positions,
        gtid_binlog_pos,
        stop_replication_ms: stop_ms,
        total_ms: started.elapsed().as_millis() as u64,
    })
}

/// Stops replication on `r`; its applied position, and how long STOP SLAVE took (ms).
async fn stop_replication(r: &Member) -> Result<(String, String, u64), SqlError> {
    let mut s = session(r).await?;
    let t = Instant::now();
    s.run("STOP SLAVE", STATEMENT).await?;
    let took = t.elapsed().as_millis() as u64;
    let pos = s
        .row("SELECT @@gtid_slave_pos AS pos", STATEMENT)
        .await?
        .map(|row| super::client::text(&row, "pos").to_string())
        .unwrap_or_default();
    s.close().await;
    Ok((r.name.clone(), pos, took))
}

#[cfg(test)]
mod tests {
    use super::seq;

    #[test]
    fn gtid_sequence_numbers() {
        assert_eq!(seq("0-1-57"), 57);
        assert_eq!(seq("0-1-57,1-2-99"), 57);
        assert_eq!(seq(""), 0);
        assert_eq!(seq("garbage"), 0);
    }
}
