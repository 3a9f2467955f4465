//! The endpoints of one HTTP platform (bk-job, salt-api): which one to try first, health with cool-down, and
//! flow control (a concurrency limit and a rate limit per endpoint) so that many tracked
//! executions never flood the gateway (DESIGN.md §6).
//!
//! Order: the endpoint that answered last, then the others in configured order; an endpoint
//! with `failures_before_cooldown` transport failures in a row is skipped for `cooldown`
//! (still tried, last, when every endpoint is cooling down).

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Instant;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{Semaphore, SemaphorePermit};
use url::Url;

pub use crate::config::bkjob::FlowSettings;

struct Endpoint {
    url: Url,
    failures: AtomicU32,
    skip_until: Mutex<Option<Instant>>,
    permits: Semaphore,
    limiter: DefaultDirectRateLimiter,
    submit_permits: Semaphore,
    submit_limiter: DefaultDirectRateLimiter,
}

/// Which budget of an endpoint a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Submits: their own rate and concurrency limits.
    Submit,
    /// Everything else (polls, logs, lists, terminates).
    Other,
}

/// The endpoints, their health, and their limits.
pub struct Endpoints {
    list: Vec<Endpoint>,
    current: AtomicUsize,
    settings: FlowSettings,
}

impl std::fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // URLs only by host: a configured URL may carry userinfo.
        let hosts: Vec<String> = self
            .list
            .iter()
            .map(|e| e.url.host_str().unwrap_or("?").to_owned())
            .collect();
        f.debug_struct("Endpoints")
            .field("hosts", &hosts)
            .field("settings", &self.settings)
            .finish()
    }
}

/// The order to try endpoints in: `current` first, then the others in configured order;
/// endpoints cooling down go last, in the same order. Pure.
pub fn order(current: usize, cooling: &[bool]) -> Vec<usize> {
    let n = cooling.len();
    let current = current % n.max(1);
    let by_preference: Vec<usize> = std::iter::once(current)
        .chain((0..n).filter(|&i| i != current))
        .collect();
    let (healthy, cooling_down): (Vec<usize>, Vec<usize>) =
        by_preference.into_iter().partition(|&i| !cooling[i]);
    healthy.into_iter().chain(cooling_down).collect()
}

impl Endpoints {
    /// Endpoints for `urls` (at least one).
    pub fn new(urls: &[Url], settings: FlowSettings) -> Self {
        let rate = |n: u32| {
            RateLimiter::direct(Quota::per_second(
                NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN),
            ))
        };
        let list = urls
            .iter()
            .map(|url| Endpoint {
                url: url.clone(),
                failures: AtomicU32::new(0),
                skip_until: Mutex::new(None),
                permits: Semaphore::new(settings.max_concurrent.max(1)),
                limiter: rate(settings.max_per_second),
                submit_permits: Semaphore::new(settings.max_concurrent.max(1)),
                submit_limiter: rate(settings.max_submits_per_second),
            })
            .collect();
        Endpoints {
            list,
            current: AtomicUsize::new(0),
            settings,
        }
    }

    /// How many endpoints.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The URL of endpoint `i`.
    pub fn url(&self, i: usize) -> &Url {
        &self.list[i].url
    }

    /// The order to try them in now.
    pub fn try_order(&self) -> Vec<usize> {
        let now = Instant::now();
        let cooling: Vec<bool> = self
            .list
            .iter()
            .map(|e| {
                e.skip_until
                    .lock()
                    .expect("endpoint lock")
                    .is_some_and(|until| now < until)
            })
            .collect();
        order(self.current.load(Ordering::Relaxed), &cooling)
    }

    /// Waits for a request slot of `budget` on endpoint `i` (rate limit, then concurrency
    /// limit); the slot is held until the permit is dropped.
    pub async fn acquire(&self, i: usize, budget: Budget) -> SemaphorePermit<'_> {
        let e = &self.list[i];
        let (limiter, permits) = match budget {
            Budget::Submit => (&e.submit_limiter, &e.submit_permits),
            Budget::Other => (&e.limiter, &e.permits),
        };
        limiter.until_ready().await;
        permits
            .acquire()
            .await
            .expect("endpoint semaphores are never closed")
    }

    /// Endpoint `i` answered: it is healthy and becomes the first to try.
    pub fn succeeded(&self, i: usize) {
        let e = &self.list[i];
        e.failures.store(0, Ordering::Relaxed);
        *e.skip_until.lock().expect("endpoint lock") = None;
        self.current.store(i, Ordering::Relaxed);
    }

    /// Endpoint `i` failed at the transport (connect, timeout, 5xx). Returns whether it now
    /// cools down.
    pub fn failed(&self, i: usize) -> bool {
        let e = &self.list[i];
        let failures = e.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= self.settings.failures_before_cooldown {
            *e.skip_until.lock().expect("endpoint lock") =
                Some(Instant::now() + self.settings.cooldown);
            e.failures.store(0, Ordering::Relaxed);
            return true;
        }
        false
    }
}

impl Endpoints {
    /// Calls `api` through `once(endpoint)`, starting at the endpoint that answered last and
    /// failing over to the next on errors that say nothing reached that endpoint's backend
    /// (connect failures), or, for read-only calls, on any transient error. A mutating call
    /// whose effect is unknown is returned at once so the caller reconciles instead of
    /// submitting twice. Every attempt is counted and timed (`PlatformRequestDone`).
    ///
    /// A submit (`gate` given) draws from the endpoints' submit budget, and its gate is told
    /// right before each attempt leaves.
    pub async fn call<T, F, Fut>(
        &self,
        platform: &str,
        api: &'static str,
        gate: Option<&dyn crate::platform::SubmitGate>,
        mut once: F,
    ) -> Result<T, crate::platform::PlatformError>
    where
        F: FnMut(usize) -> Fut,
        Fut: std::future::Future<Output = Result<T, crate::platform::PlatformError>>,
    {
        use crate::platform::{ErrorClass, PlatformError};
        let mut last_error = None;
        let budget = if gate.is_some() {
            Budget::Submit
        } else {
            Budget::Other
        };
        for i in self.try_order() {
            let permit = self.acquire(i, budget).await;
            if let Some(gate) = gate
                && let Err(why) = gate.leaving().await
            {
                return Err(crate::platform::gate_refused(api, &why));
            }
            let began = Instant::now();
            let result = once(i).await;
            drop(permit);
            crate::internal_events::PlatformRequestDone {
                platform,
                endpoint: i,
                api,
                result: result.as_ref().err().map(|e| e.class),
                elapsed: began.elapsed(),
            }
            .emit();
            match result {
                Ok(data) => {
                    self.succeeded(i);
                    return Ok(data);
                }
                Err(e) => {
                    // The endpoint itself failed (not the request, not the platform's rules;
                    // bk-job gateway codes are 16xxxxx).
                    let endpoint_fault = e.class == ErrorClass::Transient
                        && e.code.is_none_or(|c| c >= 1_600_000)
                        && e.http_status.is_none_or(|s| s >= 500);
                    if endpoint_fault && self.failed(i) {
                        tracing::warn!(
                            platform,
                            endpoint = i,
                            "Endpoint failing; skipped for a cool-down."
                        );
                    }
                    let try_next = e.class == ErrorClass::Transient
                        && !e.maybe_applied
                        && e.http_status != Some(429);
                    if !try_next || self.len() == 1 {
                        return Err(e);
                    }
                    tracing::debug!(platform, api, endpoint = i, error = %e, "Endpoint failed; trying the next one.");
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| PlatformError::transient(api, "no endpoint configured")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_good_endpoint_first_then_configured_order_then_cooling_ones() {
        assert_eq!(order(0, &[false, false, false]), vec![0, 1, 2]);
        assert_eq!(order(1, &[false, false, false]), vec![1, 0, 2]);
        assert_eq!(order(2, &[false, false, false]), vec![2, 0, 1]);
        assert_eq!(order(0, &[true, false, false]), vec![1, 2, 0]);
        assert_eq!(order(1, &[false, true, false]), vec![0, 2, 1]);
        assert_eq!(
            order(0, &[true, true]),
            vec![0, 1],
            "all cooling: still tried, in order"
        );
        assert_eq!(order(0, &[false]), vec![0]);
    }

    #[test]
    fn a_failing_endpoint_cools_down_and_a_success_heals_it() {
        let urls: Vec<Url> = ["http://a.example/", "http://b.example/"]
            .iter()
            .map(|u| u.parse().unwrap())
            .collect();
        let e = Endpoints::new(
            &urls,
            FlowSettings {
                failures_before_cooldown: 2,
                ..FlowSettings::default()
            },
        );
        assert_eq!(e.try_order(), vec![0, 1]);
        assert!(!e.failed(0));
        assert_eq!(e.try_order(), vec![0, 1], "one failure is not enough");
        assert!(e.failed(0));
        assert_eq!(e.try_order(), vec![1, 0], "A cools down: B first");
        e.succeeded(1);
        assert_eq!(e.try_order(), vec![1, 0], "stay on the healthy one");
        e.succeeded(0);
        assert_eq!(e.try_order(), vec![0, 1]);
    }
}
