//! etcd's side of the shared register workload ([`crate::register`]): linearizable
//! reads are etcd's default Get (ReadIndex), serializable ones read the member's local
//! state, and compare-and-set is one Txn comparing the value (`version = 0` for an
//! absent key) whose success branch is the Put. Which errors prove a refusal is
//! [`classify`]'s call, shared with the Put workload.

use std::time::Duration;

use rift_history::{Consistency, OpType};

use super::observer::{EtcdError, EtcdObserver};
use super::workload::classify;
use crate::register::{RegisterClient, RegisterStore, StoreError};
use crate::scenario::BoxFuture;

/// etcd as a register store: every client shares the observer's one client per member.
pub struct EtcdRegister(pub EtcdObserver);

impl RegisterStore for EtcdRegister {
    fn members(&self) -> Vec<String> {
        self.0.member_names()
    }

    fn client(&self, member: &str) -> Box<dyn RegisterClient> {
        Box::new(EtcdRegisterClient {
            observer: self.0.clone(),
            member: member.to_string(),
        })
    }
}

struct EtcdRegisterClient {
    observer: EtcdObserver,
    member: String,
}

fn store_error(e: EtcdError) -> StoreError {
    StoreError {
        outcome: match classify(&e) {
            OpType::Fail => OpType::Fail,
            _ => OpType::Info,
        },
        message: e.to_string(),
    }
}

impl RegisterClient for EtcdRegisterClient {
    fn read<'a>(
        &'a mut self,
        key: &'a str,
        consistency: Consistency,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        Box::pin(async move {
            let serializable = consistency == Consistency::Serializable;
            self.observer
                .get(&self.member, key, serializable, timeout)
                .await
                .map_err(store_error)
        })
    }

    fn write<'a>(
        &'a mut self,
        key: &'a str,
        value: i64,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.observer
                .put(&self.member, key, &value.to_string(), timeout)
                .await
                .map(|_| ())
                .map_err(store_error)
        })
    }

    fn cas<'a>(
        &'a mut self,
        key: &'a str,
        expected: Option<i64>,
        new: i64,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let expected = expected.map(|v| v.to_string());
            self.observer
                .cas(
                    &self.member,
                    key,
                    expected.as_deref(),
                    &new.to_string(),
                    timeout,
                )
                .await
                .map_err(store_error)
        })
    }
}
