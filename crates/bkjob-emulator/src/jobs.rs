//! Simulated job instances: each host follows its scenario timeline (waiting → running →
//! final), bounded by the job's timeout and by terminate requests. Status is computed from
//! the clock at each query, so nothing needs a background task.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::scenario::{HostSpec, JobSpec};

/// Host status codes used by the simulation (API.md §9.2).
const WAITING: i64 = 5;
const RUNNING: i64 = 7;
const SCRIPT_TIMEOUT: i64 = 102;
const FORCE_TERMINATED: i64 = 403;

/// One job instance.
#[derive(Debug, Clone)]
pub struct Job {
    /// `job_instance_id`.
    pub id: u64,
    /// `step_instance_id`.
    pub step_id: u64,
    /// `name` (the request's `task_name`).
    pub name: String,
    /// Creation instant.
    pub created: Instant,
    /// Creation, epoch ms.
    pub created_ms: i64,
    /// The job's timeout.
    pub timeout: Duration,
    /// Target hosts.
    pub hosts: Vec<HostSpec>,
    /// When a terminate was accepted.
    pub terminated: Option<Instant>,
    /// Job-level timing.
    pub spec: JobSpec,
}

/// One host at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct HostView {
    /// Status code.
    pub status: i64,
    /// Exit code when final.
    pub exit_code: Option<i64>,
    /// GSE code.
    pub error_code: i64,
    /// Start, since job creation.
    pub started: Option<Duration>,
    /// End, since job creation.
    pub ended: Option<Duration>,
}

impl HostView {
    fn is_final(&self) -> bool {
        !matches!(self.status, WAITING | RUNNING)
    }
}

impl Job {
    fn step_start(&self) -> Duration {
        self.spec.start_after
    }

    /// The host at `elapsed` since creation.
    pub fn host_at(&self, h: &HostSpec, elapsed: Duration) -> HostView {
        let start = self.step_start() + h.start_after;
        let natural_end = match (h.hang, h.heal_after) {
            (false, _) => Some(start + h.duration),
            (true, heal) => heal.map(|after| start + after),
        };
        let timeout_end = start + self.timeout;
        let stop_end = self
            .terminated
            .map(|t| t.duration_since(self.created) + self.spec.terminate_takes);
        // The earliest of: the natural end, the timeout, the terminate.
        let mut end: Option<(Duration, i64, Option<i64>, i64)> = None;
        let mut consider = |at: Duration, status: i64, exit: Option<i64>, gse: i64| {
            if end.is_none_or(|(e, ..)| at < e) {
                end = Some((at, status, exit, gse));
            }
        };
        if let Some(at) = natural_end {
            consider(at, h.status, Some(h.exit_code), h.error_code);
        }
        // A hung host models a partition: the platform never learns its end, not even at the
        // job's timeout; only a terminate ends it.
        if !h.hang {
            consider(timeout_end, SCRIPT_TIMEOUT, None, -1);
        }
        if let Some(at) = stop_end {
            consider(at.max(start), FORCE_TERMINATED, None, 126);
        }
        let started = (elapsed >= start).then_some(start);
        match end {
            Some((at, status, exit_code, error_code)) if elapsed >= at => HostView {
                status,
                exit_code,
                error_code,
                started: Some(start.min(at)),
                ended: Some(at),
            },
            _ if elapsed >= start => HostView {
                status: RUNNING,
                exit_code: None,
                error_code: 115,
                started,
                ended: None,
            },
            _ => HostView {
                status: WAITING,
                exit_code: None,
                error_code: 0,
                started: None,
                ended: None,
            },
        }
    }

    /// Job status and every host, at `now`.
    pub fn state_at(&self, now: Instant) -> (i64, Vec<HostView>) {
        let elapsed = now.duration_since(self.created);
        if elapsed < self.step_start() && self.terminated.is_none() {
            return (1, Vec::new());
        }
        let views: Vec<HostView> = self
            .hosts
            .iter()
            .map(|h| self.host_at(h, elapsed))
            .collect();
        let all_final = views.iter().all(HostView::is_final);
        let status = match (self.terminated, all_final) {
            (Some(_), true) => 11,
            (Some(_), false) => 10,
            (None, false) => 2,
            (None, true) if views.iter().all(|v| matches!(v.status, 9 | 3)) => 3,
            (None, true) => 4,
        };
        (status, views)
    }

    /// When the job ends (epoch ms), if no terminate changes it: the last host end; `None`
    /// while a host hangs unhealed.
    pub fn natural_end_ms(&self) -> Option<i64> {
        let far = Duration::from_secs(u64::MAX / 4_000);
        let mut last = Duration::ZERO;
        for h in &self.hosts {
            last = last.max(self.host_at(h, far).ended?);
        }
        Some(self.ms(last))
    }

    /// Whether the job status is finished (API.md §9.1 `FINISHED_STATUS_SET`).
    pub fn finished(status: i64) -> bool {
        matches!(status, 3 | 4 | 5 | 6 | 8 | 9 | 11 | 13 | 14)
    }

    fn ms(&self, d: Duration) -> i64 {
        self.created_ms + d.as_millis() as i64
    }

    /// `data` of get_job_instance_status (API.md §4).
    pub fn status_data(
        &self,
        now: Instant,
        scope_type: &str,
        scope_id: &str,
        return_ip_result: bool,
    ) -> Value {
        let (status, views) = self.state_at(now);
        let finished = Self::finished(status);
        let elapsed = now.duration_since(self.created);
        let end_ms = finished.then(|| {
            let end = views
                .iter()
                .filter_map(|v| v.ended)
                .max()
                .unwrap_or(elapsed);
            self.ms(end)
        });
        let start_ms = (status != 1).then(|| self.ms(self.step_start()));
        let total = match (start_ms, end_ms) {
            (Some(s), Some(e)) => Some(e - s),
            _ => None,
        };
        let ip_results: Option<Vec<Value>> = return_ip_result.then(|| {
            self.hosts
                .iter()
                .zip(&views)
                .map(|(h, v)| {
                    json!({
                        "bk_host_id": h.bk_host_id,
                        "ip": h.ip,
                        "bk_cloud_id": h.bk_cloud_id,
                        "status": v.status,
                        "tag": v.is_final().then(|| h.tag.clone()),
                        "exit_code": v.exit_code,
                        "error_code": v.error_code,
                        "start_time": v.started.map(|d| self.ms(d)),
                        "end_time": v.ended.map(|d| self.ms(d)),
                        "total_time": match (v.started, v.ended) {
                            (Some(s), Some(e)) => Some((e - s).as_millis() as i64),
                            _ => None,
                        },
                    })
                })
                .collect()
        });
        json!({
            "finished": finished,
            "job_instance": {
                "job_instance_id": self.id,
                "bk_scope_type": scope_type,
                "bk_scope_id": scope_id,
                "name": self.name,
                "status": status,
                "create_time": self.created_ms,
                "start_time": start_ms,
                "end_time": end_ms,
                "total_time": total,
            },
            "step_instance_list": [{
                "step_instance_id": self.step_id,
                "name": self.name,
                "type": 1,
                "status": status,
                "execute_count": 0,
                "create_time": self.created_ms,
                "start_time": start_ms,
                "end_time": end_ms,
                "total_time": total,
                "step_ip_result_list": ip_results,
            }],
        })
    }

    /// A host's log at `now`: the scenario text once the host started, else empty.
    pub fn log_of(&self, h: &HostSpec, now: Instant) -> String {
        let view = self.host_at(h, now.duration_since(self.created));
        if view.started.is_some() {
            h.log.clone()
        } else {
            String::new()
        }
    }

    /// `data` item of get_job_instance_list (keys as the code emits them, API.md §7).
    pub fn list_item(&self, now: Instant, scope_type: &str, scope_id: &str) -> Value {
        let status = self.state_at(now).0;
        json!({
            "job_instance_id": self.id,
            "bk_scope_type": scope_type,
            "bk_scope_id": scope_id,
            "job_plan_id": 0,
            "job_template_id": 0,
            "name": self.name,
            "operator": "jobwatch",
            "launch_mode": 2,
            "status": status,
            "type": 1,
            "create_time": self.created_ms,
            "start_time": self.created_ms,
            "end_time": Value::Null,
            "total_time": Value::Null,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(status: i64, duration_ms: u64) -> HostSpec {
        HostSpec {
            bk_host_id: 1,
            bk_cloud_id: 0,
            ip: "10.0.0.1".into(),
            start_after: Duration::from_millis(10),
            duration: Duration::from_millis(duration_ms),
            status,
            exit_code: 0,
            error_code: 0,
            tag: String::new(),
            log: "x".into(),
            hang: false,
            heal_after: None,
        }
    }

    fn job(hosts: Vec<HostSpec>, timeout_ms: u64) -> Job {
        Job {
            id: 1,
            step_id: 2,
            name: "t".into(),
            created: Instant::now(),
            created_ms: 0,
            timeout: Duration::from_millis(timeout_ms),
            hosts,
            terminated: None,
            spec: JobSpec::default(),
        }
    }

    #[test]
    fn a_host_waits_runs_then_ends() {
        let j = job(vec![host(104, 100)], 10_000);
        let h = &j.hosts[0];
        assert_eq!(j.host_at(h, Duration::from_millis(5)).status, WAITING);
        assert_eq!(j.host_at(h, Duration::from_millis(50)).status, RUNNING);
        let end = j.host_at(h, Duration::from_millis(200));
        assert_eq!(end.status, 104);
        assert_eq!(end.ended, Some(Duration::from_millis(110)));
    }

    #[test]
    fn the_job_timeout_ends_a_long_host_with_102() {
        let j = job(vec![host(9, 5_000)], 100);
        assert_eq!(
            j.host_at(&j.hosts[0], Duration::from_millis(200)).status,
            SCRIPT_TIMEOUT
        );
        assert_eq!(j.state_at(j.created + Duration::from_millis(200)).0, 4);
    }

    #[test]
    fn a_partitioned_host_stays_running_past_the_timeout_until_it_heals() {
        let j = job(
            vec![HostSpec {
                hang: true,
                heal_after: Some(Duration::from_millis(500)),
                ..host(104, 100)
            }],
            200,
        );
        let h = &j.hosts[0];
        assert_eq!(
            j.host_at(h, Duration::from_millis(400)).status,
            RUNNING,
            "past the 200 ms timeout"
        );
        assert_eq!(j.state_at(j.created + Duration::from_millis(400)).0, 2);
        assert_eq!(j.host_at(h, Duration::from_millis(600)).status, 104);
        assert_eq!(j.state_at(j.created + Duration::from_millis(600)).0, 4);
    }

    #[test]
    fn terminate_goes_through_10_to_11_and_403() {
        let mut j = job(
            vec![HostSpec {
                hang: true,
                ..host(9, 0)
            }],
            10_000,
        );
        j.terminated = Some(j.created + Duration::from_millis(50));
        assert_eq!(j.state_at(j.created + Duration::from_millis(100)).0, 10);
        let (status, views) = j.state_at(j.created + Duration::from_millis(200));
        assert_eq!(status, 11);
        assert_eq!(views[0].status, FORCE_TERMINATED);
    }
}
