//! What `/metrics` exports: the reactors' counters (`reactor::stats`),
//! summed over the reactors at each scrape, in the OpenMetrics text format.
//!
//! The numbers live in plain atomics that each reactor owns and bumps with
//! a relaxed add; prometheus-client's own `Counter`/`Family` types would put
//! its shared atomics and a `Family`'s lock on the data path. So the
//! reactors know nothing of prometheus-client: a `Collector` reads the
//! atomics when a scrape asks, and prometheus-client does the text format
//! (names, help, label escaping, `_total`, `# EOF`).
//!
//! Every series exists from the start, at zero: one per pin reason, one per
//! shard. A shard's label is its configured id.

use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::reactor::stats::{sum_i64, sum_u64, ReactorStats, ShardStats};
use crate::reactor::PinReason;

/// The content type of what `render` writes (OpenMetrics 1.0 text, which
/// Prometheus asks for first and parses).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric's name starts with this and `_`.
const PREFIX: &str = "dbrouter";

/// The metrics of one process: what the reactors count.
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// `reactors`: each reactor's counters; `shard_ids`: the configured id
    /// of each shard index the counters are kept by.
    pub fn new(reactors: Box<[Arc<ReactorStats>]>, shard_ids: Vec<u32>) -> Metrics {
        let mut registry = Registry::with_prefix(PREFIX);
        registry.register_collector(Box::new(ReactorCollector {
            reactors,
            shard_ids,
        }));
        Metrics { registry }
    }

    /// The exposition, as served at `/metrics` (`CONTENT_TYPE`).
    pub fn render(&self) -> String {
        let mut text = String::with_capacity(4096);
        // Writing to a String cannot fail, and the collector returns only
        // the writer's errors.
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            log::error!("admin: the metrics could not be encoded");
        }
        text
    }
}

/// Reads the reactors' atomics at each scrape.
struct ReactorCollector {
    reactors: Box<[Arc<ReactorStats>]>,
    shard_ids: Vec<u32>,
}

impl fmt::Debug for ReactorCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReactorCollector")
            .field("reactors", &self.reactors.len())
            .field("shard_ids", &self.shard_ids)
            .finish()
    }
}

impl ReactorCollector {
    /// A per-shard gauge, summed over the reactors.
    fn shard_i64(&self, index: usize, f: impl Fn(&ShardStats) -> &AtomicI64) -> i64 {
        let one = |r: &Arc<ReactorStats>| r.shard(index).map_or(0, |s| f(s).load(Relaxed));
        self.reactors.iter().map(one).fold(0, i64::wrapping_add)
    }

    /// A per-shard counter, summed over the reactors.
    fn shard_u64(&self, index: usize, f: impl Fn(&ShardStats) -> &AtomicU64) -> u64 {
        let one = |r: &Arc<ReactorStats>| r.shard(index).map_or(0, |s| f(s).load(Relaxed));
        self.reactors.iter().map(one).fold(0, u64::wrapping_add)
    }

    /// A metric with one series per shard, labelled with the shard's id.
    fn per_shard<M: EncodeMetric>(
        &self,
        encoder: &mut DescriptorEncoder,
        (name, help, metric_type): (&str, &str, MetricType),
        value: impl Fn(usize) -> M,
    ) -> fmt::Result {
        let mut family = encoder.encode_descriptor(name, help, None, metric_type)?;
        for (index, id) in self.shard_ids.iter().enumerate() {
            value(index).encode(family.encode_family(&[("shard", *id)])?)?;
        }
        Ok(())
    }

    /// A metric with one series per pin reason.
    fn per_reason<M: EncodeMetric>(
        encoder: &mut DescriptorEncoder,
        (name, help, metric_type): (&str, &str, MetricType),
        value: impl Fn(PinReason) -> M,
    ) -> fmt::Result {
        let mut family = encoder.encode_descriptor(name, help, None, metric_type)?;
        for reason in PinReason::ALL {
            value(reason).encode(family.encode_family(&[("reason", reason.name())])?)?;
        }
        Ok(())
    }
}

impl Collector for ReactorCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        use MetricType::{Counter, Gauge};
        let reactors = &self.reactors;
        let e = &mut encoder;

        let pins_started = (
            "pins_started",
            "Pins started (transaction mode): a client kept its backend connection between \
             statements for session state that cannot move, by reason.",
            Counter,
        );
        Self::per_reason(e, pins_started, |reason| {
            ConstCounter::new(sum_u64(reactors, |r| &r.pins_started[reason.index()]))
        })?;
        let pinned = (
            "pinned_sessions",
            "Client sessions pinned now (transaction mode), by reason; a session pinned for \
             several reasons counts under each.",
            Gauge,
        );
        Self::per_reason(e, pinned, |reason| {
            ConstGauge::new(sum_i64(reactors, |r| &r.pinned[reason.index()]))
        })?;

        let backends = (
            "backend_connections",
            "Backend connections open now (connecting, in use, or idle in the pool), by shard.",
            Gauge,
        );
        self.per_shard(e, backends, |i| {
            ConstGauge::new(self.shard_i64(i, |s| &s.backend_connections))
        })?;
        let waiting = (
            "pool_waiting_clients",
            "Clients waiting now for a backend connection of an exhausted pool (transaction \
             mode), by shard.",
            Gauge,
        );
        self.per_shard(e, waiting, |i| {
            ConstGauge::new(self.shard_i64(i, |s| &s.pool_waiting))
        })?;
        let exhausted = (
            "pool_exhausted",
            "Statements answered with ERR 1040 because every pooled backend connection was in \
             use (the wait queue was full, or pool.wait_timeout_ms passed), by shard.",
            Counter,
        );
        self.per_shard(e, exhausted, |i| {
            ConstCounter::new(self.shard_u64(i, |s| &s.pool_exhausted))
        })?;

        let open = sum_i64(reactors, |r| &r.clients_open);
        let metric = e.encode_descriptor(
            "client_connections",
            "Client connections open now.",
            None,
            Gauge,
        )?;
        ConstGauge::new(open).encode(metric)?;
        let mut family = e.encode_descriptor(
            "reactor_client_connections",
            "Client connections open now, by reactor (each reactor hands new clients to the \
             least loaded one, so these stay within a couple of each other).",
            None,
            Gauge,
        )?;
        for (id, r) in reactors.iter().enumerate() {
            let open = r.clients_open.load(std::sync::atomic::Ordering::Relaxed);
            ConstGauge::new(open).encode(family.encode_family(&[("reactor", id)])?)?;
        }
        let accepted = sum_u64(reactors, |r| &r.clients_accepted);
        let metric = e.encode_descriptor(
            "client_connections_accepted",
            "Client connections accepted.",
            None,
            Counter,
        )?;
        ConstCounter::new(accepted).encode(metric)?;
        let commands = sum_u64(reactors, |r| &r.commands);
        let metric = e.encode_descriptor(
            "commands",
            "Client commands read (COM_QUERY, COM_STMT_EXECUTE, COM_PING, ...; a COM_QUERY \
             holding several statements counts once).",
            None,
            Counter,
        )?;
        ConstCounter::new(commands).encode(metric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;

    fn two_reactors_two_shards() -> (Vec<Arc<ReactorStats>>, Metrics) {
        let reactors: Vec<_> = (0..2).map(|_| Arc::new(ReactorStats::new(2))).collect();
        let metrics = Metrics::new(reactors.clone().into(), vec![10, 20]);
        (reactors, metrics)
    }

    /// The sample lines (no comments) of a rendering.
    fn samples(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    #[test]
    fn every_series_is_there_at_zero_from_the_start() {
        let (_, metrics) = two_reactors_two_shards();
        let text = metrics.render();
        let samples = samples(&text);
        for reason in PinReason::ALL {
            let name = reason.name();
            assert!(
                samples.contains(
                    &format!("dbrouter_pins_started_total{{reason=\"{name}\"}} 0").as_str()
                ),
                "{text}"
            );
            assert!(
                samples
                    .contains(&format!("dbrouter_pinned_sessions{{reason=\"{name}\"}} 0").as_str()),
                "{text}"
            );
        }
        for line in [
            "dbrouter_backend_connections{shard=\"10\"} 0",
            "dbrouter_backend_connections{shard=\"20\"} 0",
            "dbrouter_pool_waiting_clients{shard=\"20\"} 0",
            "dbrouter_pool_exhausted_total{shard=\"10\"} 0",
            "dbrouter_client_connections 0",
            "dbrouter_reactor_client_connections{reactor=\"0\"} 0",
            "dbrouter_reactor_client_connections{reactor=\"1\"} 0",
            "dbrouter_client_connections_accepted_total 0",
            "dbrouter_commands_total 0",
        ] {
            assert!(samples.contains(&line), "{line} in\n{text}");
        }
        assert_eq!(
            samples.len(),
            2 * PinReason::ALL.len() + 3 * 2 + 3 + 2,
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn numbers_are_summed_over_the_reactors() {
        let (reactors, metrics) = two_reactors_two_shards();
        for r in &reactors {
            r.commands.fetch_add(3, Relaxed);
            r.clients_accepted.fetch_add(2, Relaxed);
            r.clients_open.fetch_add(1, Relaxed);
            r.pins_started[PinReason::NamedLock.index()].fetch_add(1, Relaxed);
            r.shard(1).unwrap().pool_exhausted.fetch_add(4, Relaxed);
        }
        reactors[0].pinned[PinReason::TemporaryTable.index()].fetch_add(1, Relaxed);
        let _open = reactors[1].backend_opened(0);
        reactors[1]
            .shard(1)
            .unwrap()
            .pool_waiting
            .fetch_add(5, Relaxed);
        let text = metrics.render();
        let samples = samples(&text);
        for line in [
            "dbrouter_commands_total 6",
            "dbrouter_client_connections_accepted_total 4",
            "dbrouter_client_connections 2",
            "dbrouter_pins_started_total{reason=\"get_lock\"} 2",
            "dbrouter_pins_started_total{reason=\"temporary_table\"} 0",
            "dbrouter_pinned_sessions{reason=\"temporary_table\"} 1",
            "dbrouter_backend_connections{shard=\"10\"} 1",
            "dbrouter_backend_connections{shard=\"20\"} 0",
            "dbrouter_pool_waiting_clients{shard=\"20\"} 5",
            "dbrouter_pool_exhausted_total{shard=\"20\"} 8",
            "dbrouter_pool_exhausted_total{shard=\"10\"} 0",
        ] {
            assert!(samples.contains(&line), "{line} in\n{text}");
        }
    }

    #[test]
    fn each_metric_says_what_it_counts() {
        let (_, metrics) = two_reactors_two_shards();
        let text = metrics.render();
        let families: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .collect();
        assert_eq!(
            families,
            [
                "dbrouter_pins_started counter",
                "dbrouter_pinned_sessions gauge",
                "dbrouter_backend_connections gauge",
                "dbrouter_pool_waiting_clients gauge",
                "dbrouter_pool_exhausted counter",
                "dbrouter_client_connections gauge",
                "dbrouter_reactor_client_connections gauge",
                "dbrouter_client_connections_accepted counter",
                "dbrouter_commands counter",
            ]
        );
        for line in text.lines().filter(|l| l.starts_with("# HELP ")) {
            let help = line.splitn(4, ' ').nth(3).unwrap_or("");
            assert!(help.len() > 20 && help.ends_with('.'), "{line}");
        }
    }
}
