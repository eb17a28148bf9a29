//! One poll of one MariaDB member, against its real port (never through rift, so a
//! fault never blinds the poller): `SHOW MASTER STATUS`, `SHOW SLAVE STATUS`, the GTID
//! positions, `read_only`, and the semi-synchronous replication variables and status.
//! Recorded as a `mariadb-status` observation.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::client::{Session, SqlError, text, variables};

/// What one poll of one member said.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct MariaStatus {
    pub read_only: bool,
    pub gtid_current_pos: String,
    pub gtid_slave_pos: String,
    pub gtid_binlog_pos: String,
    /// `SHOW MASTER STATUS`: the binlog file and position.
    pub binlog_file: Option<String>,
    pub binlog_pos: Option<u64>,
    pub semi_sync: SemiSync,
    /// `SHOW SLAVE STATUS`, when the member replicates from a primary.
    pub replica: Option<ReplicaStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct SemiSync {
    /// `rpl_semi_sync_master_enabled`.
    pub master_enabled: bool,
    /// `rpl_semi_sync_master_timeout`, ms.
    pub master_timeout_ms: u64,
    pub slave_enabled: bool,
    /// `Rpl_semi_sync_master_status`: ON while commits wait for an acknowledgement;
    /// OFF once a wait timed out (the primary replicates asynchronously until a
    /// replica catches up).
    pub master_status: bool,
    pub master_clients: u64,
    /// Commits acknowledged by a replica / committed without one.
    pub master_yes_tx: u64,
    pub master_no_tx: u64,
    /// Times the primary switched semi-sync off (`Rpl_semi_sync_master_no_times`).
    pub master_no_times: u64,
    pub slave_status: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ReplicaStatus {
    /// The port `CHANGE MASTER` names (rift's `repl` listener of the primary).
    pub master_port: u16,
    pub io_running: String,
    pub sql_running: bool,
    pub seconds_behind_master: Option<u64>,
    pub gtid_io_pos: String,
    pub last_io_error: String,
    pub last_sql_error: String,
}

/// Deadline of one poll (connect included).
pub const POLL_DEADLINE: Duration = Duration::from_millis(800);

/// One kept connection per member for the poller; a failed poll drops it.
#[derive(Clone)]
pub struct MariaObserver {
    ports: Arc<BTreeMap<String, u16>>,
    sessions: Arc<BTreeMap<String, Mutex<Option<Session>>>>,
}

impl MariaObserver {
    pub fn new(ports: Vec<(String, u16)>) -> Self {
        let sessions = ports
            .iter()
            .map(|(n, _)| (n.clone(), Mutex::new(None)))
            .collect();
        Self {
            ports: Arc::new(ports.into_iter().collect()),
            sessions: Arc::new(sessions),
        }
    }

    pub fn names(&self) -> Vec<String> {
        self.ports.keys().cloned().collect()
    }

    pub fn port(&self, node: &str) -> Option<u16> {
        self.ports.get(node).copied()
    }

    /// Polls `node` once within `deadline`.
    pub async fn status(&self, node: &str, deadline: Duration) -> Result<MariaStatus, SqlError> {
        let (Some(port), Some(slot)) = (self.port(node), self.sessions.get(node)) else {
            return Err(SqlError::Connection {
                node: node.to_string(),
                message: "not a member of this lab".into(),
            });
        };
        let mut slot = slot.lock().await;
        let poll = async {
            if slot.is_none() {
                *slot = Some(Session::connect(node, port, deadline).await?);
            }
            let s = slot.as_mut().expect("connected above");
            poll(s, deadline).await
        };
        let r = match tokio::time::timeout(deadline, poll).await {
            Ok(r) => r,
            Err(_) => Err(SqlError::Deadline {
                node: node.to_string(),
                deadline,
            }),
        };
        if r.is_err() {
            // The connection's state is unknown after an error: the next poll reconnects.
            *slot = None;
        }
        r
    }
}

const POSITIONS: &str = "SELECT @@read_only AS read_only, @@gtid_current_pos AS current, \
     @@gtid_slave_pos AS slave, @@gtid_binlog_pos AS binlog, \
     @@rpl_semi_sync_master_enabled AS m_enabled, @@rpl_semi_sync_master_timeout AS m_timeout, \
     @@rpl_semi_sync_slave_enabled AS s_enabled";

async fn poll(s: &mut Session, deadline: Duration) -> Result<MariaStatus, SqlError> {
    let p = s.row(POSITIONS, deadline).await?.unwrap_or_default();
    let status = variables(
        &s.rows("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync%'", deadline)
            .await?,
    );
    let master = s.row("SHOW MASTER STATUS", deadline).await?;
    let replica = s.row("SHOW SLAVE STATUS", deadline).await?;
    let on = |v: &str| v == "1" || v.eq_ignore_ascii_case("ON");
    let num = |v: &str| v.parse::<u64>().unwrap_or(0);
    let st = |k: &str| status.get(k).map(String::as_str).unwrap_or("");
    Ok(MariaStatus {
        read_only: on(text(&p, "read_only")),
        gtid_current_pos: text(&p, "current").to_string(),
        gtid_slave_pos: text(&p, "slave").to_string(),
        gtid_binlog_pos: text(&p, "binlog").to_string(),
        binlog_file: master.as_ref().map(|m| text(m, "File").to_string()),
        binlog_pos: master.as_ref().map(|m| num(text(m, "Position"))),
        semi_sync: SemiSync {
            master_enabled: on(text(&p, "m_enabled")),
            master_timeout_ms: num(text(&p, "m_timeout")),
            slave_enabled: on(text(&p, "s_enabled")),
            master_status: on(st("rpl_semi_sync_master_status")),
            master_clients: num(st("rpl_semi_sync_master_clients")),
            master_yes_tx: num(st("rpl_semi_sync_master_yes_tx")),
            master_no_tx: num(st("rpl_semi_sync_master_no_tx")),
            master_no_times: num(st("rpl_semi_sync_master_no_times")),
            slave_status: on(st("rpl_semi_sync_slave_status")),
        },
        replica: replica.map(|r| ReplicaStatus {
            master_port: text(&r, "Master_Port").parse().unwrap_or(0),
            io_running: text(&r, "Slave_IO_Running").to_string(),
            sql_running: text(&r, "Slave_SQL_Running") == "Yes",
            seconds_behind_master: text(&r, "Seconds_Behind_Master").parse().ok(),
            gtid_io_pos: text(&r, "Gtid_IO_Pos").to_string(),
            last_io_error: text(&r, "Last_IO_Error").to_string(),
            last_sql_error: text(&r, "Last_SQL_Error").to_string(),
        }),
    })
}
