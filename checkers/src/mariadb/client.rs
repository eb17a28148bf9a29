//! MariaDB client plumbing shared by the lab, the observer, the workload and the
//! `promote` action: connections to a member's real port with a deadline, statements
//! with a deadline, and rows as name -> text maps.

use std::collections::BTreeMap;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Row};
use thiserror::Error;

use super::plan::{PASSWORD, USER};

#[derive(Debug, Error)]
pub enum SqlError {
    #[error("{node}: no answer within {deadline:?}")]
    Deadline { node: String, deadline: Duration },
    /// The server refused the statement (its code and message).
    #[error("{node}: server error {code}: {message}")]
    Server {
        node: String,
        code: u16,
        message: String,
    },
    /// Connection lost, refused, or a protocol error: nothing proven either way.
    #[error("{node}: {message}")]
    Connection { node: String, message: String },
}

impl SqlError {
    fn from_driver(node: &str, e: mysql_async::Error) -> Self {
        match e {
            mysql_async::Error::Server(s) => SqlError::Server {
                node: node.to_string(),
                code: s.code,
                message: s.message,
            },
            other => SqlError::Connection {
                node: node.to_string(),
                message: other.to_string(),
            },
        }
    }

    /// The server refused because it is read-only (`ER_OPTION_PREVENTS_STATEMENT`
    /// 1290, or 1792 in a read-only transaction): nothing was applied.
    pub fn is_read_only_refusal(&self) -> bool {
        matches!(
            self,
            SqlError::Server {
                code: 1290 | 1792,
                ..
            }
        )
    }
}

/// A connection to one member's real port.
pub struct Session {
    pub node: String,
    conn: Conn,
}

impl Session {
    /// Connects to 127.0.0.1:`port` within `deadline`. Never through the unix socket
    /// (mysql_async would switch to it on loopback), so what the lab does is TCP.
    pub async fn connect(node: &str, port: u16, deadline: Duration) -> Result<Self, SqlError> {
        let opts = OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(port)
            .user(Some(USER))
            .pass(Some(PASSWORD))
            .prefer_socket(false);
        match tokio::time::timeout(deadline, Conn::new(opts)).await {
            Ok(Ok(conn)) => Ok(Session {
                node: node.to_string(),
                conn,
            }),
            Ok(Err(e)) => Err(SqlError::from_driver(node, e)),
            Err(_) => Err(SqlError::Deadline {
                node: node.to_string(),
                deadline,
            }),
        }
    }

    /// Runs `sql`, discarding any result.
    pub async fn run(&mut self, sql: &str, deadline: Duration) -> Result<(), SqlError> {
        let node = self.node.clone();
        match tokio::time::timeout(deadline, self.conn.query_drop(sql)).await {
            Ok(r) => r.map_err(|e| SqlError::from_driver(&node, e)),
            Err(_) => Err(SqlError::Deadline { node, deadline }),
        }
    }

    /// Runs `sql` and returns its rows as column name -> text (`None` for NULL).
    pub async fn rows(&mut self, sql: &str, deadline: Duration) -> Result<Vec<TextRow>, SqlError> {
        let node = self.node.clone();
        let rows: Vec<Row> = match tokio::time::timeout(deadline, self.conn.query(sql)).await {
            Ok(r) => r.map_err(|e| SqlError::from_driver(&node, e))?,
            Err(_) => return Err(SqlError::Deadline { node, deadline }),
        };
        Ok(rows.into_iter().map(text_row).collect())
    }

    /// The first row of `sql`, if any.
    pub async fn row(
        &mut self,
        sql: &str,
        deadline: Duration,
    ) -> Result<Option<TextRow>, SqlError> {
        Ok(self.rows(sql, deadline).await?.into_iter().next())
    }

    pub async fn close(self) {
        let _ = self.conn.disconnect().await;
    }
}

/// One row, column name -> text value (`None` for NULL).
pub type TextRow = BTreeMap<String, Option<String>>;

fn text_row(row: Row) -> TextRow {
    let columns = row.columns();
    let values = row.unwrap();
    columns
        .iter()
        .zip(values)
        .map(|(c, v)| {
            let text = match v {
                mysql_async::Value::NULL => None,
                mysql_async::Value::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
                other => Some(other.as_sql(true).trim_matches('\'').to_string()),
            };
            (c.name_str().into_owned(), text)
        })
        .collect()
}

/// The text of `column`, empty when absent or NULL.
pub fn text<'a>(row: &'a TextRow, column: &str) -> &'a str {
    row.get(column).and_then(|v| v.as_deref()).unwrap_or("")
}

/// `SHOW GLOBAL STATUS`/`VARIABLES` rows as name -> value.
pub fn variables(rows: &[TextRow]) -> BTreeMap<String, String> {
    rows.iter()
        .map(|r| {
            (
                text(r, "Variable_name").to_ascii_lowercase(),
                text(r, "Value").to_string(),
            )
        })
        .collect()
}
