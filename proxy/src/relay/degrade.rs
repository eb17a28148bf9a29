//! The degraded path of a pump: latency with jitter through a deadline queue that
//! never reorders, bandwidth pacing, slow close and a data limit. Only links with a
//! `degrade` fault come here, so it may allocate per chunk.

use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use super::{Pump, RelayError, Step, wait_for_change};
use crate::fault::Degradation;

/// Bytes a degraded direction may hold in its deadline queue before it stops reading.
pub(super) const MAX_QUEUED: usize = 4 * 1024 * 1024;

/// A chunk waiting for its delivery time.
pub(super) struct Chunk {
    pub(super) due: Instant,
    pub(super) read_at: Instant,
    pub(super) data: Vec<u8>,
    pub(super) offset: usize,
}

impl Pump<'_> {
    pub(super) async fn degrade_step(&mut self, d: &Degradation) -> Result<Step, RelayError> {
        let now = Instant::now();
        if self.start < self.end {
            // A chunk read before the degradation began keeps its place at the head.
            let data = self.buf[self.start..self.end].to_vec();
            self.push_chunk(now, self.read_at, data);
            self.start = 0;
            self.end = 0;
        }
        if self.queue.is_empty() && self.eof {
            if d.slow_close_ms > 0 {
                tokio::time::sleep(Duration::from_millis(d.slow_close_ms)).await;
            }
            return self.finish();
        }
        if let Some(front) = self.queue.front() {
            let due = front.due.max(self.next_send_at);
            if due <= now {
                let mut allowed = usize::MAX;
                if d.bandwidth_bytes_per_sec > 0 {
                    // Pace in slices of about 50 ms worth of bandwidth.
                    allowed = (d.bandwidth_bytes_per_sec / 20).max(1) as usize;
                }
                if d.limit_data_bytes > 0 {
                    let left = d.limit_data_bytes.saturating_sub(self.sent);
                    if left == 0 {
                        // Like Toxiproxy's limit_data: the limit is followed by a close.
                        self.finish()?;
                        return Err(RelayError::DataLimit {
                            direction: self.direction.as_str(),
                            limit: d.limit_data_bytes,
                        });
                    }
                    allowed = allowed.min(left as usize);
                }
                let before = self.sent;
                let step = self.write_front(allowed).await?;
                let written = self.sent - before;
                if d.bandwidth_bytes_per_sec > 0 && written > 0 {
                    let cost =
                        Duration::from_secs_f64(written as f64 / d.bandwidth_bytes_per_sec as f64);
                    self.next_send_at = self.next_send_at.max(now) + cost;
                }
                return Ok(step);
            }
            let can_read = !self.eof && self.queued < MAX_QUEUED;
            tokio::select! {
                biased;
                _ = wait_for_change(&mut self.watch) => {
                    self.refresh = true;
                    return Ok(Step::Continue);
                }
                _ = tokio::time::sleep_until(due) => return Ok(Step::Continue),
                ready = self.from.readable(), if can_read => {
                    ready.map_err(Self::io_error(self.from_side, "read"))?;
                }
            }
        }
        if self.eof || self.queued >= MAX_QUEUED {
            return Ok(Step::Continue);
        }
        match self.read_chunk().await? {
            Some(0) => self.eof = true,
            Some(n) => {
                let read_at = Instant::now();
                let mut due = read_at + Duration::from_millis(d.latency_ms);
                if d.jitter_ms > 0 {
                    let jitter =
                        rand::rng().random_range(-(d.jitter_ms as i64)..=d.jitter_ms as i64);
                    due = if jitter >= 0 {
                        due + Duration::from_millis(jitter as u64)
                    } else {
                        due.checked_sub(Duration::from_millis(jitter.unsigned_abs()))
                            .unwrap_or(read_at)
                            .max(read_at)
                    };
                }
                let data = self.buf[..n].to_vec();
                self.push_chunk(due, read_at, data);
            }
            None => {}
        }
        Ok(Step::Continue)
    }

    fn push_chunk(&mut self, due: Instant, read_at: Instant, data: Vec<u8>) {
        // Jitter never reorders: a chunk is due no earlier than the one before it.
        let due = due.max(self.last_due);
        self.last_due = due;
        self.queued += data.len();
        self.queue.push_back(Chunk {
            due,
            read_at,
            data,
            offset: 0,
        });
    }

    pub(super) async fn write_front(&mut self, allowed: usize) -> Result<Step, RelayError> {
        let Some(front) = self.queue.front_mut() else {
            return Ok(Step::Continue);
        };
        let end = front.data.len().min(front.offset.saturating_add(allowed));
        let data = &front.data[front.offset..end];
        let Some(n) = Self::write_some(self.to, self.to_side, &mut self.watch, data).await? else {
            self.refresh = true;
            return Ok(Step::Continue);
        };
        front.offset += n;
        let finished = front.offset == front.data.len();
        let read_at = front.read_at;
        if finished {
            self.queue.pop_front();
            self.delay.record(read_at.elapsed().as_secs_f64());
        }
        self.queued -= n;
        self.count(n);
        Ok(Step::Continue)
    }
}
