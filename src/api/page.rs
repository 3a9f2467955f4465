//! The status page: server-rendered tables of firing alerts, then active and history
//! executions (these two from one store read).

use std::fmt::Write as _;

use crate::alert::{Alert, AlertStatus};
use crate::store::Board;
use crate::time::rfc3339_ms;
use crate::tracker::ExecutionReport;

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn table(title: &str, id: &str, rows: &[ExecutionReport], total: u64) -> String {
    let shown = if (rows.len() as u64) < total {
        format!(", {} shown", rows.len())
    } else {
        String::new()
    };
    let mut html = format!(
        "<h2>{title} (<span id=\"{id}-total\">{total}</span>{shown})</h2>\n<table id=\"{id}\">\n<tr><th>execution</th><th>check</th><th>origin</th><th>state</th><th>trigger</th><th>job</th><th>started</th><th>conditions</th><th>reason</th></tr>\n"
    );
    for r in rows {
        let job = match (&r.jid, r.job_instance_id) {
            (Some(jid), _) => jid.clone(),
            (None, Some(id)) => id.to_string(),
            (None, None) => String::new(),
        };
        let (origin, trigger) = (r.origin.as_str(), r.trigger_status.as_str());
        let reason: String = r.reason.chars().take(300).collect();
        let _ = writeln!(
            html,
            "<tr data-execution-id=\"{id}\" class=\"{state}\"><td><a href=\"/v1/executions/{id}\">{id}</a></td><td>{check}</td><td>{origin}</td><td>{state}</td><td>{trigger}</td><td>{job}</td><td>{started}</td><td>{conditions}</td><td>{reason}</td></tr>",
            id = escape(&r.execution_id),
            check = escape(&r.check),
            state = r.state.as_str(),
            started = escape(&r.started_at),
            conditions = escape(
                &r.conditions
                    .iter()
                    .map(|c| format!("{}: {}", c.kind.as_str(), c.detail))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            reason = escape(&reason),
        );
    }
    html.push_str("</table>\n");
    html
}

fn firing(alerts: &[Alert]) -> String {
    let firing: Vec<&Alert> = alerts
        .iter()
        .filter(|a| a.status == AlertStatus::Firing)
        .collect();
    let mut html = format!(
        "<h2>Firing alerts ({})</h2>\n<table id=\"alerts\">\n<tr><th>alert</th><th>check</th><th>severity</th><th>since</th><th>summary</th></tr>\n",
        firing.len()
    );
    for a in firing {
        let label = |name: &str| escape(a.labels.get(name).map_or("", String::as_str));
        let _ = writeln!(
            html,
            "<tr data-fingerprint=\"{fp}\" class=\"failed\"><td>{name}</td><td>{check}</td><td>{severity}</td><td>{since}</td><td><a href=\"/v1/executions/{exec}\">{summary}</a></td></tr>",
            fp = escape(&a.fingerprint),
            name = label("alertname"),
            check = label("check"),
            severity = label("severity"),
            since = rfc3339_ms(a.starts_at_ms),
            exec = escape(&a.cause.execution_id),
            summary = escape(&a.cause.summary),
        );
    }
    html.push_str("</table>\n");
    html
}

/// The history's paging links: to the newest page, and to older ones when a full page shows.
fn pager(board: &Board, paged: bool, page_rows: usize) -> String {
    let mut links = Vec::new();
    if paged {
        links.push("<a id=\"newest\" href=\"/\">newest</a>".to_owned());
    }
    if board.history.len() >= page_rows
        && let Some(last) = board.history.last()
    {
        links.push(format!(
            "<a id=\"older\" href=\"/?before={}\">older →</a>",
            escape(&last.execution_id)
        ));
    }
    if links.is_empty() {
        String::new()
    } else {
        format!("<p class=\"pager\">{}</p>\n", links.join(" · "))
    }
}

/// The page: firing alerts, active executions, then history, newest first, with true totals
/// and history in pages of `page_rows` (`paged`: an older page is shown; it does not refresh
/// itself).
pub fn render(
    alerts: &[Alert],
    board: &Board,
    paged: bool,
    page_rows: usize,
    accepting: bool,
) -> String {
    let banner = if accepting {
        ""
    } else {
        "<p class=\"warn\">jobwatch is shutting down: no new work is accepted.</p>"
    };
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\">{refresh}<title>jobwatch</title>\
<style>body{{font-family:sans-serif;margin:1em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 6px;font-size:90%}}\
.failed,.timed_out,.lost,.trigger_failed{{background:#fdd}}.succeeded{{background:#dfd}}.skipped{{background:#eee}}.warn{{color:#a00}}</style></head>\
<body><h1>jobwatch {version}</h1>{banner}\n{alerts}{active}{history}{pager}<p><a href=\"/v1/executions\">JSON</a> · <a href=\"/v1/alerts\">alerts</a> · <a href=\"/v1/notifications\">notifications</a> · <a href=\"/openapi.json\">OpenAPI</a> · <a href=\"/metrics\">metrics</a></p></body></html>\n",
        version = env!("CARGO_PKG_VERSION"),
        refresh = if paged {
            ""
        } else {
            "<meta http-equiv=\"refresh\" content=\"5\">"
        },
        alerts = firing(alerts),
        active = table("Active", "active", &board.active, board.active_total),
        history = table("History", "history", &board.history, board.history_total),
        pager = pager(board, paged, page_rows),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn text_is_escaped() {
        assert_eq!(
            super::escape("<b>\"x\" & 'y'</b>"),
            "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;"
        );
    }
}
